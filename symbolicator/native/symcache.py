"""The symcache: a debug file converted once into sorted arrays, looked up by binary search.

Layout (little-endian, every table 8-byte aligned, offsets implied by the counts;
the reader casts memoryviews in native order, so it assumes a little-endian host)::

    header   magic b"SYMCACHE", u32 version, u32 arch (string index),
             u32 n_ranges, n_nodes, n_functions, n_symbols, n_strings, u32 blob_size
    ranges   u64 start[n_ranges]                      sorted; a range lasts until the next start
             (u32 file, u32 line, u32 column, u32 node, u32 symbol, u32 _)[n_ranges]
    nodes    (u32 function, u32 call_file, u32 call_line, u32 call_column, u32 parent, u32 _,
              u64 entry_addr)[n_nodes]                parent == NONE: the real (outermost) function
    funcs    (u32 symbol, u32 name)[n_functions]      raw and demangled name, string indices
    symbols  (u64 start, u64 end, u32 function, u32 file)[n_symbols]   the symbol table
    strings  u32 offset[n_strings + 1], then the UTF-8 blob

Range boundaries include every line row, inline range and symbol start/end,
so each range knows its symbol too: a lookup is one `bisect` on a memoryview
plus a few indexed reads, and touches no DWARF. A range whose file, line,
node and symbol are all empty is a gap. Without a node, the frame's function
comes from the symbol; with one, the outermost frame still takes the
symbol's name, as llvm-symbolizer does (`foo.cold`, `foo.constprop.0` are
the real symbols where DWARF names the source function).
"""

from __future__ import annotations

import mmap
import struct
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from symbolicator.errors import MalformedObject

SYMCACHE_VERSION = 1  # v1: line ranges, inline tree, symbol-table fallback
MAGIC = b"SYMCACHE"
NONE = 0xFFFFFFFF
HEADER = struct.Struct("<8sIIIIIIII")
RANGE = struct.Struct("<IIIIII")
NODE = struct.Struct("<IIIIIIQ")
FUNC = struct.Struct("<II")
SYMBOL = struct.Struct("<QQII")
MAX_INLINE_DEPTH = 256
MAX_ADDRESS = (1 << 64) - 1


class Frame(NamedTuple):
    """One frame of a lookup, innermost first.

    A NamedTuple rather than a frozen dataclass: as immutable, and 4x cheaper
    to create, which is most of a lookup's cost.

    `function` is demangled, `symbol` the raw (mangled) name of the same
    function; `file` a normalised path; `line`/`column` 1-based or None;
    `sym_addr` the file virtual address where the function starts;
    `inlined` is True for every frame but the last, the real function.
    """

    function: str | None
    symbol: str | None
    file: str | None
    line: int | None
    column: int | None
    inlined: bool
    sym_addr: int | None = None

    def to_json(self) -> dict[str, object]:
        return {"function": self.function, "symbol": self.symbol, "file": self.file, "line": self.line,
                "column": self.column, "inlined": self.inlined}


def _align(n: int) -> int:
    return (n + 7) & ~7


@dataclass(frozen=True, slots=True)
class Layout:
    """Byte offsets of each table, derived from the header counts."""

    ranges_addr: int
    ranges_rec: int
    nodes: int
    funcs: int
    syms: int
    str_offsets: int
    blob: int
    end: int

    @classmethod
    def of(cls, n_ranges: int, n_nodes: int, n_funcs: int, n_syms: int, n_strings: int, blob: int) -> Layout:
        p = _align(HEADER.size)
        ra = p
        p += 8 * n_ranges
        rr = p
        p = _align(p + RANGE.size * n_ranges)
        nd = p
        p = _align(p + NODE.size * n_nodes)
        fn = p
        p = _align(p + FUNC.size * n_funcs)
        sr = p
        p = _align(p + SYMBOL.size * n_syms)
        so = p
        p = _align(p + 4 * (n_strings + 1))
        return cls(ra, rr, nd, fn, sr, so, p, p + blob)


class SymCache:
    """A memory-mapped (or in-memory) symcache. Lookups only read it, so threads may share one."""

    def __init__(self, buf: bytes | mmap.mmap, keep: object = None) -> None:
        self._keep = keep
        if len(buf) < HEADER.size:
            raise MalformedObject("symcache too short for its header")
        magic, version, arch, nr, nn, nf, ns, nstr, blob = HEADER.unpack_from(buf, 0)
        if magic != MAGIC:
            raise MalformedObject("not a symcache (bad magic)")
        if version != SYMCACHE_VERSION:
            raise MalformedObject(f"symcache version {version}, expected {SYMCACHE_VERSION}")
        lay = Layout.of(nr, nn, nf, ns, nstr, blob)
        if lay.end != len(buf):
            raise MalformedObject(f"symcache size {len(buf)} does not match its header ({lay.end})")
        str_first, = struct.unpack_from("<I", buf, lay.str_offsets)
        str_last, = struct.unpack_from("<I", buf, lay.str_offsets + 4 * nstr)
        if str_first != 0 or str_last != blob:
            raise MalformedObject("symcache string table is corrupt")
        view = memoryview(buf)
        self._view = view
        self._lay = lay
        self._n_nodes, self._n_funcs, self._n_syms, self._n_strings = nn, nf, ns, nstr
        self._starts = view[lay.ranges_addr:lay.ranges_addr + 8 * nr].cast("Q")
        self._rec = view[lay.ranges_rec:lay.ranges_rec + RANGE.size * nr].cast("I")
        self._nodes = view[lay.nodes:lay.nodes + NODE.size * nn].cast("I")
        self._str_off = view[lay.str_offsets:lay.str_offsets + 4 * (nstr + 1)].cast("I")
        self._blob_size = blob
        self._strings: dict[int, str | None] = {}
        self._funcs: dict[int, tuple[str | None, str | None]] = {}
        self._syms: dict[int, tuple[str | None, str | None, int, str | None]] = {}
        self.arch = self._string(arch)

    @classmethod
    def open(cls, path: str | Path) -> SymCache:
        """Memory-map a symcache file; a corrupt or outdated file raises `MalformedObject`."""
        with open(path, "rb") as fh:
            try:
                mm = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except ValueError as exc:  # empty file
                raise MalformedObject("symcache is empty") from exc
        try:
            return cls(mm, mm)
        except MalformedObject:
            mm.close()
            raise

    @classmethod
    def from_bytes(cls, data: bytes) -> SymCache:
        return cls(data)

    def _string(self, index: int) -> str | None:
        s = self._strings.get(index)
        if s is None:
            if index >= self._n_strings:
                return None
            lo, hi = self._str_off[index], self._str_off[index + 1]
            if not lo <= hi <= self._blob_size:
                raise MalformedObject("symcache string table is corrupt")
            base = self._lay.blob
            s = bytes(self._view[base + lo:base + hi]).decode("utf-8", "replace")
            self._strings[index] = s
        return s

    def _function(self, index: int) -> tuple[str | None, str | None]:
        f = self._funcs.get(index)
        if f is None:
            if index >= self._n_funcs:
                return None, None
            sym, name = FUNC.unpack_from(self._view, self._lay.funcs + FUNC.size * index)
            f = self._funcs[index] = (self._string(sym), self._string(name))
        return f

    def _symbol(self, index: int) -> tuple[str | None, str | None, int, str | None]:
        """(raw name, demangled name, start address, STT_FILE name) of symbol `index`."""
        sym = self._syms.get(index)
        if sym is None:
            start, _end, func, file = SYMBOL.unpack_from(self._view, self._lay.syms + SYMBOL.size * index)
            raw, name = self._function(func)
            sym = self._syms[index] = (raw, name, start, self._string(file))
        return sym

    def lookup(self, addr: int) -> list[Frame]:
        """Frames for a file virtual address, innermost first; `[]` when nothing covers it."""
        i = bisect_right(self._starts, addr) - 1
        if i < 0:
            return []
        rec = self._rec
        o = 6 * i
        file, line, col, node, sym = rec[o], rec[o + 1], rec[o + 2], rec[o + 3], rec[o + 4]
        string = self._string
        if node >= self._n_nodes:
            if sym < self._n_syms:
                raw, name, start, sym_file = self._symbol(sym)
                return [Frame(name, raw, string(file) or sym_file, line or None, col or None, False, start)]
            if file == NONE and not line:
                return []
            return [Frame(None, None, string(file), line or None, col or None, False, None)]
        frames = []
        nodes = self._nodes
        n_nodes = self._n_nodes
        for _ in range(MAX_INLINE_DEPTH):
            o = 8 * node
            parent = nodes[o + 4]
            if parent >= n_nodes:
                if sym < self._n_syms:
                    raw, name, start, sym_file = self._symbol(sym)
                    frames.append(Frame(name, raw, string(file) or sym_file, line or None, col or None, False, start))
                else:
                    raw, name = self._function(nodes[o])
                    frames.append(Frame(name, raw, string(file), line or None, col or None, False,
                                        nodes[o + 6] | nodes[o + 7] << 32))
                break
            raw, name = self._function(nodes[o])
            frames.append(Frame(name, raw, string(file), line or None, col or None, True, None))
            file, line, col, node = nodes[o + 1], nodes[o + 2], nodes[o + 3], parent
        return frames

    def __len__(self) -> int:
        return len(self._starts)

    def close(self) -> None:
        """Release the mapping (lookups afterwards fail)."""
        for view in (self._starts, self._rec, self._nodes, self._str_off, self._view):
            view.release()
        if isinstance(self._keep, mmap.mmap):
            self._keep.close()
