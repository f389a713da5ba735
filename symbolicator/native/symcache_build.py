"""Building a symcache: open the object, read DWARF + symbols, flatten, write the tables.

Runs in a worker process (it is CPU-bound and may take seconds on a big
dSYM). The flattening works on step functions: the line table already is one
(address → row until the next address); the inline tree becomes one by a
sweep over the nested ranges with a stack (address → innermost node). Merging
the two at the union of their boundaries gives the symcache ranges; equal
neighbours are folded. Everything else (strings, functions, symbols) is
interned into tables the reader indexes directly.
"""

from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any, cast

import numpy as np

from symbolicator.errors import MalformedObject, SymbolicatorError, UnsupportedFormat
from symbolicator.native import symcache as fmt
from symbolicator.native.demangle import demangle
from symbolicator.native.dwarf import MAX_SECTION_BYTES, DwarfData, elf_dwarf_sections, read_dwarf
from symbolicator.native.dwarf_units import Collector
from symbolicator.native.macho_dwarf import dsym_payload, macho_dwarf_sections, open_slice
from symbolicator.native.symtab import Symbol, elf_symbols, macho_symbols
from symbolicator.types import Arch

_MACHO_MAGICS = {b"\xcf\xfa\xed\xfe", b"\xce\xfa\xed\xfe", b"\xfe\xed\xfa\xcf", b"\xfe\xed\xfa\xce",
                 b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf"}
_ELF_ARCH = {"EM_X86_64": Arch.X86_64, "EM_386": Arch.X86, "EM_AARCH64": Arch.ARM64, "EM_ARM": Arch.ARM,
             "EM_PPC": Arch.PPC, "EM_PPC64": Arch.PPC64, "EM_MIPS": Arch.MIPS, "EM_RISCV": Arch.RISCV64}


def _elf(data: mmap.mmap, max_section_bytes: int) -> tuple[dict[str, bytes], list[Symbol], Arch, bool]:
    """Read through the mapping: only the DWARF sections are copied out (and decompressed)."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    try:
        elf = ELFFile(cast(Any, data))
        for section in elf.iter_sections():
            if section["sh_type"] != "SHT_NOBITS" and section["sh_offset"] + section["sh_size"] > len(data):
                raise MalformedObject(f"ELF section {section.name or '?'} points past the end of the file")
        arch = _ELF_ARCH.get(elf["e_machine"], Arch.UNKNOWN)
        if arch == Arch.MIPS and elf.elfclass == 64:
            arch = Arch.MIPS64
        return elf_dwarf_sections(elf, data, max_section_bytes), elf_symbols(elf), arch, elf.little_endian
    except (ELFError, struct.error, ValueError, KeyError, AssertionError) as exc:
        raise MalformedObject(f"malformed ELF: {exc}") from exc


def load_object(path: str | Path, arch: Arch | str | None = None,
                max_section_bytes: int = MAX_SECTION_BYTES) -> tuple[dict[str, bytes], list[Symbol], Arch, bool]:
    """DWARF sections, function symbols, arch and byte order of an ELF file, Mach-O slice or dSYM.

    `max_section_bytes` caps each decompressed DWARF section (a bigger one is `MalformedObject`).
    """
    p = Path(path)
    if p.is_dir():
        p = dsym_payload(p)
    wanted = Arch.parse(arch) if isinstance(arch, str) else arch
    with open(p, "rb") as fh:
        magic = fh.read(4)
        if magic == b"\x7fELF":
            fh.seek(0)
            try:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:
                raise MalformedObject(f"{p}: empty file") from exc
            with mm:
                return _elf(mm, max_section_bytes)
    if magic in _MACHO_MAGICS:
        binary, found = open_slice(p, wanted)
        try:
            return macho_dwarf_sections(binary), macho_symbols(binary), found, True
        except (ValueError, TypeError, AttributeError) as exc:
            raise MalformedObject(f"{p}: malformed Mach-O ({exc})") from exc
    raise UnsupportedFormat(f"{p}: neither ELF nor Mach-O")


def _node_steps(c: Collector) -> tuple[Any, Any]:
    """Innermost node per address as a step function (start addresses, node or -1)."""
    if not c.range_low:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64)
    low = np.array(c.range_low, dtype=np.uint64)
    node = np.array(c.range_node, dtype=np.int64)
    depth = np.array(c.node_depth, dtype=np.int64)[node]
    order = np.lexsort((depth, low)).tolist()
    lows, highs, nodes = c.range_low, c.range_high, c.range_node
    out_a: list[int] = []
    out_n: list[int] = []
    stack: list[tuple[int, int]] = []
    for i in order:
        lo, hi, n = lows[i], highs[i], nodes[i]
        while stack and stack[-1][0] <= lo:
            h = stack.pop()[0]
            out_a.append(h)
            out_n.append(stack[-1][1] if stack else -1)
        if stack and hi > stack[-1][0]:
            hi = stack[-1][0]
        stack.append((hi, n))
        out_a.append(lo)
        out_n.append(n)
    while stack:
        h = stack.pop()[0]
        out_a.append(h)
        out_n.append(stack[-1][1] if stack else -1)
    a = np.array(out_a, dtype=np.uint64)
    n_arr = np.array(out_n, dtype=np.int64)
    order2 = np.argsort(a, kind="stable")
    a, n_arr = a[order2], n_arr[order2]
    keep = np.ones(len(a), dtype=bool)
    keep[:-1] = a[:-1] != a[1:]
    return a[keep], n_arr[keep]


def _flatten(d: DwarfData | None, sym_start: Any, sym_end: Any) -> tuple[Any, ...]:
    """Merge the line, node and symbol step functions into ranges (start, file, line, col, node, symbol)."""
    empty = np.zeros(0, dtype=np.uint64)
    if d is not None:
        na, nn = _node_steps(d.nodes)
        la = d.rows_addr
    else:
        na, nn, la = empty, np.zeros(0, dtype=np.int64), empty
    bounds = np.union1d(np.union1d(la, na), np.union1d(sym_start, sym_end)).astype(np.uint64)
    n = len(bounds)
    if len(la):
        li = np.searchsorted(la, bounds, side="right") - 1
        has_l = li >= 0
        li_c = np.where(has_l, li, 0)
        file = np.where(has_l, d.rows_file[li_c], -1)  # type: ignore[union-attr]
        is_row = has_l & (file != -1)
        line = np.where(is_row, d.rows_line[li_c], 0)  # type: ignore[union-attr]
        col = np.where(is_row, d.rows_col[li_c], 0)  # type: ignore[union-attr]
        file = np.where(file < 0, -1, file)
    else:
        file = np.full(n, -1, dtype=np.int64)
        line = col = np.zeros(n, dtype=np.int64)
    if len(na):
        ni = np.searchsorted(na, bounds, side="right") - 1
        node = np.where(ni >= 0, nn[np.where(ni >= 0, ni, 0)], -1)
    else:
        node = np.full(n, -1, dtype=np.int64)
    if len(sym_start):
        si = np.searchsorted(sym_start, bounds, side="right") - 1
        si_c = np.where(si >= 0, si, 0)
        sym = np.where((si >= 0) & (bounds < sym_end[si_c]), si, -1)
    else:
        sym = np.full(n, -1, dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[1:] = ((file[1:] != file[:-1]) | (line[1:] != line[:-1]) | (col[1:] != col[:-1])
                | (node[1:] != node[:-1]) | (sym[1:] != sym[:-1]))
    return bounds[keep], file[keep], line[keep], col[keep], node[keep], sym[keep]


class _Strings:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.items: list[bytes] = []

    def add(self, s: str | None) -> int:
        if s is None:
            return fmt.NONE
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.items)
            self.items.append(s.encode("utf-8", "replace"))
        return i


def _u32(values: Any) -> Any:
    return np.where(np.asarray(values, dtype=np.int64) < 0, fmt.NONE, values).astype("<u4")


def write(d: DwarfData | None, symbols: list[Symbol], arch: Arch) -> bytes:
    """Serialise the tables (see `symcache` for the layout)."""
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
    starts, file, line, col, node, sym = _flatten(d, sym_start, sym_end)
    files = d.files if d is not None else []
    file_str = np.array([strings.add(f) for f in files] + [fmt.NONE], dtype=np.int64)
    ranges = np.zeros((len(starts), 6), dtype="<u4")
    ranges[:, 0] = file_str[np.where(file < 0, len(files), file)]
    ranges[:, 1], ranges[:, 2], ranges[:, 3], ranges[:, 4] = line, col, _u32(node), _u32(sym)
    node_dtype = [("f", "<u4"), ("cf", "<u4"), ("cl", "<u4"), ("cc", "<u4"), ("p", "<u4"), ("pad", "<u4"),
                  ("entry", "<u8")]
    nodes = np.zeros(0, dtype=node_dtype)
    if d is not None and d.nodes.node_origin:
        c = d.nodes
        fmap = [func(name) for name in d.functions]
        n_nodes = len(c.node_origin)
        nodes = np.zeros(n_nodes, dtype=node_dtype)
        nodes["f"] = np.array(fmap, dtype=np.int64)[np.array(d.node_function, dtype=np.int64)]
        cf = np.array(c.node_call_file, dtype=np.int64)
        nodes["cf"] = file_str[np.where(cf < 0, len(files), cf)]
        nodes["cl"] = c.node_call_line
        nodes["cc"] = c.node_call_col
        nodes["p"] = _u32(c.node_parent)
        entry = np.zeros(n_nodes, dtype=np.uint64)
        if c.range_low:
            rn = np.array(c.range_node, dtype=np.int64)
            rl = np.array(c.range_low, dtype=np.uint64)
            order = np.lexsort((rl, rn))[::-1]
            entry[rn[order]] = rl[order]
        nodes["entry"] = entry
    range_starts = starts.astype("<u8")
    sym_recs = np.zeros(len(symbols), dtype=[("start", "<u8"), ("end", "<u8"), ("f", "<u4"), ("file", "<u4")])
    if symbols:
        sym_recs["start"] = sym_start
        sym_recs["end"] = sym_end
        sym_recs["f"] = [func(x.name) for x in symbols]
        sym_recs["file"] = [strings.add(x.file) for x in symbols]
    func_arr = np.array(funcs, dtype="<u4").reshape(-1, 2)
    offsets = np.zeros(len(strings.items) + 1, dtype="<u4")
    if strings.items:
        offsets[1:] = np.cumsum([len(s) for s in strings.items])
    blob = b"".join(strings.items)
    lay = fmt.Layout.of(len(range_starts), len(nodes), len(funcs), len(symbols), len(strings.items), len(blob))
    out = bytearray(lay.end)
    fmt.HEADER.pack_into(out, 0, fmt.MAGIC, fmt.SYMCACHE_VERSION, arch_idx, len(range_starts), len(nodes),
                         len(funcs), len(symbols), len(strings.items), len(blob))
    for offset, arr in ((lay.ranges_addr, range_starts), (lay.ranges_rec, ranges), (lay.nodes, nodes),
                        (lay.funcs, func_arr), (lay.syms, sym_recs), (lay.str_offsets, offsets)):
        raw = np.ascontiguousarray(arr).tobytes()
        out[offset:offset + len(raw)] = raw
    out[lay.blob:lay.end] = blob
    return bytes(out)


def build(path: str | Path, arch: Arch | str | None = None, symbol_file: str | Path | None = None,
          max_section_bytes: int = MAX_SECTION_BYTES) -> bytes:
    """Convert a debug file (ELF, Mach-O slice, dSYM bundle) into symcache bytes.

    `symbol_file`: the stripped binary a split debug file belongs to; its
    symbol table is used when it has one (what llvm-symbolizer does when it
    follows a debuglink). Raises `MalformedObject` for broken input,
    `UnsupportedFormat` for other formats, `ArchitectureRequired` for a fat
    file without `arch`.
    """
    sections, symbols, found, little_endian = load_object(path, arch, max_section_bytes)
    if symbol_file is not None and Path(symbol_file) != Path(path):
        own_symbols = load_object(symbol_file, arch, max_section_bytes)[1]
        if own_symbols:
            symbols = own_symbols
    try:
        dwarf = read_dwarf(sections, little_endian) if sections.get("debug_info") else None
    except SymbolicatorError:
        raise
    except (IndexError, ValueError, KeyError, OverflowError, RecursionError, MemoryError) as exc:
        raise MalformedObject(f"{path}: malformed DWARF ({type(exc).__name__}: {exc})") from exc
    if dwarf is None and not symbols:
        raise UnsupportedFormat(f"{path}: no DWARF and no symbol table")
    return write(dwarf, symbols, found)


def build_to_file(path: str | Path, out_path: str | Path, arch: Arch | str | None = None) -> int:
    """`build` and write the result atomically (temp file + rename); returns its size."""
    data = build(path, arch)
    out = Path(out_path)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return len(data)
