"""Writing a symcache: the flattened ranges, node table, functions, symbols and strings.

The flattening works on step functions: the line table already is one
(address → row until the next address); the inline tree becomes one per unit
(`dwarf.unit_steps`). Merging the two with the symbols at the union of their
boundaries gives the symcache ranges; equal neighbours are folded. It runs
window by window over the merged runs (`spill.merge_windows`), so the rows of
a GB file never sit in memory at once. Everything else (strings, functions,
symbols) is interned into tables the reader indexes directly.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from symbolicator.native import symcache as fmt
from symbolicator.native.demangle import demangle
from symbolicator.native.dwarf import LINE_DTYPE, STEP_DTYPE, DwarfData
from symbolicator.native.spill import DEFAULT_MEMORY_BYTES, Budget, merge_windows, open_spill_file, raw_bytes
from symbolicator.native.symtab import Symbol
from symbolicator.types import Arch


class _Strings:
    """The string table, interned by UTF-8 bytes (one copy of each: key and item are one object)."""

    def __init__(self) -> None:
        self.index: dict[bytes, int] = {}
        self.items: list[bytes] = []

    def add(self, s: str | None) -> int:
        if s is None:
            return fmt.NONE
        b = s.encode("utf-8", "replace")
        i = self.index.get(b)
        if i is None:
            i = self.index[b] = len(self.items)
            self.items.append(b)
        return i


def _u32(values: Any) -> Any:
    return np.where(np.asarray(values, dtype=np.int64) < 0, fmt.NONE, values).astype("<u4")


def _last_per_address(w: Any) -> Any:
    """A window sorted by (address, priority): the last record at each address wins, as in LLVM."""
    if len(w) < 2:
        return w
    keep = np.ones(len(w), dtype=bool)
    keep[:-1] = w["a"][:-1] != w["a"][1:]
    return w[keep]


class _Flattener:
    """Merges the line, node and symbol step functions into symcache ranges, one address window at a time.

    Range boundaries are the union of every line row, inline step and symbol start/end; each
    boundary takes the row, node and symbol in force there; equal neighbours are folded. What
    is in force at a window's start comes from the previous window (`line_state`,
    `node_state`), and folding compares with the last range written (`prev`), so the ranges
    do not depend on where windows were cut.
    """

    def __init__(self, sym_start: Any, sym_end: Any) -> None:
        self.sym_start, self.sym_end = sym_start, sym_end
        self.sym_end_sorted = np.sort(sym_end)  # as boundaries: ends need not follow starts' order
        self.line_state = np.zeros(1, dtype=[("f", "<i4"), ("l", "<u4"), ("c", "<u4")])
        self.line_state["f"] = -1
        self.node_state = -1
        self.prev: tuple[int, int, int, int, int] | None = None

    def window(self, low: int, high: int | None, lines: Any, steps: Any) -> tuple[Any, ...]:
        lw, nw = _last_per_address(lines), _last_per_address(steps)
        ss, se = self.sym_start, self.sym_end
        lo_s = np.searchsorted(ss, low, side="left")
        hi_s = len(ss) if high is None else np.searchsorted(ss, high, side="left")
        se_sorted = self.sym_end_sorted
        lo_e = np.searchsorted(se_sorted, low, side="left")
        hi_e = len(se_sorted) if high is None else np.searchsorted(se_sorted, high, side="left")
        bounds = np.concatenate((lw["a"], nw["a"], ss[lo_s:hi_s], se_sorted[lo_e:hi_e])).astype(np.uint64)
        bounds.sort(kind="stable")  # four sorted runs: a merge, not a full sort
        if len(bounds) > 1:
            bounds = bounds[np.concatenate(([True], bounds[1:] != bounds[:-1]))]
        n = len(bounds)
        if not n:
            return (bounds,) + tuple(np.zeros(0, dtype=np.int64) for _ in range(5))
        li = np.searchsorted(lw["a"], bounds, side="right")  # 0: the state carried in
        lf = np.concatenate((self.line_state["f"], lw["f"])).astype(np.int64)[li]
        ll = np.concatenate((self.line_state["l"], lw["l"]))[li]
        lc = np.concatenate((self.line_state["c"], lw["c"]))[li]
        is_row = lf != -1
        line = np.where(is_row, ll, 0).astype(np.int64)
        col = np.where(is_row, lc, 0).astype(np.int64)
        file = np.where(lf < 0, -1, lf)
        ni = np.searchsorted(nw["a"], bounds, side="right")
        node = np.concatenate((np.array([self.node_state], dtype=np.int64), nw["n"].astype(np.int64)))[ni]
        if len(ss):
            si = np.searchsorted(ss, bounds, side="right") - 1
            si_c = np.where(si >= 0, si, 0)
            sym = np.where((si >= 0) & (bounds < se[si_c]), si, -1)
        else:
            sym = np.full(n, -1, dtype=np.int64)
        if len(lw):
            self.line_state = lw[["f", "l", "c"]][-1:].copy()
        if len(nw):
            self.node_state = int(nw["n"][-1])
        keep = np.ones(n, dtype=bool)
        keep[1:] = ((file[1:] != file[:-1]) | (line[1:] != line[:-1]) | (col[1:] != col[:-1])
                    | (node[1:] != node[:-1]) | (sym[1:] != sym[:-1]))
        if self.prev is not None:
            keep[0] = (int(file[0]), int(line[0]), int(col[0]), int(node[0]), int(sym[0])) != self.prev
        out = bounds[keep], file[keep], line[keep], col[keep], node[keep], sym[keep]
        if len(out[0]):
            self.prev = (int(out[1][-1]), int(out[2][-1]), int(out[3][-1]), int(out[4][-1]), int(out[5][-1]))
        return out


def _ranges_to(d: DwarfData | None, sym_start: Any, sym_end: Any, file_str: Any, n_files: int,
               budget: Budget, starts_out: IO[bytes], recs_out: IO[bytes], shift: int = 0) -> int:
    """Write the ranges' start addresses (plus `shift`) and records to two files; returns how many.

    A range whose start + `shift` would pass 2^64 − 1 is dropped (only corrupt input has one)."""
    flat = _Flattener(sym_start, sym_end)
    count = 0
    if d is not None:
        stores = [d.lines, d.steps]
        windows = merge_windows(stores, budget)
    else:
        windows = iter([(0, None, [np.zeros(0, dtype=LINE_DTYPE), np.zeros(0, dtype=STEP_DTYPE)])])
    for low, high, (lw, nw) in windows:
        starts, file, line, col, node, sym = flat.window(low, high, lw, nw)
        if shift:
            fits = starts <= np.uint64(fmt.MAX_ADDRESS - shift)
            starts, file, line, col, node, sym = (a[fits] for a in (starts, file, line, col, node, sym))
            starts = starts + np.uint64(shift)
        if not len(starts):
            continue
        rec = np.zeros((len(starts), 6), dtype="<u4")
        rec[:, 0] = file_str[np.where(file < 0, n_files, file)]
        rec[:, 1], rec[:, 2], rec[:, 3], rec[:, 4] = line, col, _u32(node), _u32(sym)
        starts_out.write(raw_bytes(starts.astype("<u8")))
        recs_out.write(raw_bytes(rec))
        count += len(starts)
    return count


NODE_DTYPE = np.dtype([("f", "<u4"), ("cf", "<u4"), ("cl", "<u4"), ("cc", "<u4"), ("p", "<u4"), ("pad", "<u4"),
                       ("entry", "<u8")])


def _shifted(addresses: Any, shift: int) -> Any:
    """`addresses + shift`, saturating at 2^64 − 1."""
    a = np.asarray(addresses, dtype=np.uint64)
    return np.where(a > np.uint64(fmt.MAX_ADDRESS - shift), np.uint64(fmt.MAX_ADDRESS), a + np.uint64(shift))


def _node_blocks(d: DwarfData, fmap: Any, file_str: Any, n_files: int, shift: int = 0) -> Iterator[Any]:
    """The node table chunk by chunk, from the node and function stores (read back if spilled)."""
    for chunk, functions in zip(d.nodes.chunks(), d.node_function.chunks(), strict=True):
        nodes = np.zeros(len(chunk), dtype=NODE_DTYPE)
        nodes["f"] = fmap[functions]
        cf = chunk["cf"].astype(np.int64)
        nodes["cf"] = file_str[np.where(cf < 0, n_files, cf)]
        nodes["cl"] = chunk["cl"]
        nodes["cc"] = chunk["cc"]
        nodes["p"] = _u32(chunk["parent"])
        nodes["entry"] = _shifted(chunk["entry"], shift) if shift else chunk["entry"]
        yield nodes


def _pad_to(out: IO[bytes], written: int, offset: int) -> int:
    if offset < written:
        raise AssertionError("symcache layout went backwards")
    out.write(b"\0" * (offset - written))
    return offset


def write_to(out: IO[bytes], d: DwarfData | None, symbols: list[Symbol], arch: Arch,
             spill_dir: str | Path | None = None, address_shift: int = 0) -> int:
    """Serialise the tables (see `symcache` for the layout) into `out`; returns the bytes written.

    `address_shift` is added to every address stored (range starts, function entries, symbol
    bounds): wasm's DWARF counts from the code section, its lookups take module offsets.

    The ranges go through two spill files first (their count is in the header, which comes
    first); the node table is written in blocks; only strings, functions and symbols are
    gathered in memory.
    """
    budget = d.budget if d is not None else Budget(DEFAULT_MEMORY_BYTES, spill_dir)
    strings = _Strings()
    arch_idx = strings.add(arch.value)
    funcs: list[tuple[int, int]] = []
    func_index: dict[str | None, int] = {}

    def func(raw: str | None) -> int:
        i = func_index.get(raw)
        if i is None:
            i = func_index[raw] = len(funcs)
            funcs.append((strings.add(raw), strings.add(demangle(raw) if raw else None)))
        return i

    sym_start = np.array([x.address for x in symbols], dtype=np.uint64)
    sym_end = np.array([x.end for x in symbols], dtype=np.uint64)
    files = d.files if d is not None else []
    file_str = np.array([strings.add(f) for f in files] + [fmt.NONE], dtype=np.int64)
    n_nodes = d.nodes.count if d is not None else 0
    fmap = np.array([func(name) for name in d.functions], dtype=np.int64) if d is not None and n_nodes else None
    sym_recs = np.zeros(len(symbols), dtype=[("start", "<u8"), ("end", "<u8"), ("f", "<u4"), ("file", "<u4")])
    if symbols:
        sym_recs["start"] = _shifted(sym_start, address_shift)
        sym_recs["end"] = _shifted(sym_end, address_shift)
        sym_recs["f"] = [func(x.name) for x in symbols]
        sym_recs["file"] = [strings.add(x.file) for x in symbols]
    func_arr = np.array(funcs, dtype="<u4").reshape(-1, 2)
    offsets = np.zeros(len(strings.items) + 1, dtype="<u4")
    if strings.items:
        offsets[1:] = np.cumsum([len(s) for s in strings.items])
    blob_size = int(offsets[-1])
    with open_spill_file(budget.spill_dir) as starts_f, open_spill_file(budget.spill_dir) as recs_f:
        n_ranges = _ranges_to(d, sym_start, sym_end, file_str, len(files), budget, starts_f, recs_f, address_shift)
        lay = fmt.Layout.of(n_ranges, n_nodes, len(funcs), len(symbols), len(strings.items), blob_size)
        out.write(fmt.HEADER.pack(fmt.MAGIC, fmt.SYMCACHE_VERSION, arch_idx, n_ranges, n_nodes, len(funcs),
                                  len(symbols), len(strings.items), blob_size))
        pos = _pad_to(out, fmt.HEADER.size, lay.ranges_addr)
        for f in (starts_f, recs_f):
            f.seek(0)
            shutil.copyfileobj(f, out, 1 << 20)
        pos += n_ranges * (8 + fmt.RANGE.size)
    pos = _pad_to(out, pos, lay.nodes)
    if d is not None and n_nodes:
        assert fmap is not None
        for block in _node_blocks(d, fmap, file_str, len(files), address_shift):
            out.write(raw_bytes(block))
    pos += n_nodes * fmt.NODE.size
    for offset, arr in ((lay.funcs, func_arr), (lay.syms, sym_recs), (lay.str_offsets, offsets)):
        pos = _pad_to(out, pos, offset)
        raw = np.ascontiguousarray(arr).tobytes()
        out.write(raw)
        pos += len(raw)
    pos = _pad_to(out, pos, lay.blob)
    for item in strings.items:
        out.write(item)
    return lay.end


def write(d: DwarfData | None, symbols: list[Symbol], arch: Arch) -> bytes:
    """`write_to` into memory."""
    buf = io.BytesIO()
    write_to(buf, d, symbols, arch)
    return buf.getvalue()
