"""PDB → symcache: the same tables the DWARF and Breakpad paths fill (`symcache_build.write`), addresses = RVAs.

Per module (one object file, read and dropped before the next):

- line rows: the C13 line table gives the outermost function's line at each address; inside an
  inline site, the site's own annotation rows (deepest site wins) give the innermost line, as
  llvm-symbolizer reports it. Both are turned into one step function by `dwarf.unit_steps`,
  with each row a pseudo-node of its nesting depth.
- the inline tree (`inline_tree.add_procedure`): a root node per procedure that has inline
  sites, and a node per (site, caller line) met at some address, so each frame's line is its
  caller's row at the very address looked up, as llvm-symbolizer and symbolic report it.
- symbols: each procedure, named by the public symbol at its address when there is one (the
  mangled name, which `demangle` turns into `demo::outer(int)`), else by its own record
  (`demo::leaf` for a static function), as llvm-symbolizer's PDB reader does; publics without a
  procedure reach to the next symbol in their section.

Rows go through the run stores under a `Budget`, like DWARF's, so a big PDB is spilled rather than
held; only the publics (one tuple each) and the interned file and function names stay in memory.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from pathlib import Path
from typing import Any

import numpy as np

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native.dwarf import LINE_DTYPE, STEP_DTYPE, DwarfData, unit_steps
from symbolicator.native.dwarf.units import NODE_DTYPE, Collector
from symbolicator.native.pdb.inline_tree import InlineTree, Segment, add_procedure
from symbolicator.native.pdb.inlinees import InlineeNames
from symbolicator.native.pdb.modules import ModuleDebug, read_module
from symbolicator.native.pdb.msf import Msf, opened_msf
from symbolicator.native.pdb.streams import Dbi, Names, read_dbi, read_info, read_publics
from symbolicator.native.spill import DEFAULT_MEMORY_BYTES, Budget, ChunkStore, RunStore
from symbolicator.native.symcache_write import write
from symbolicator.native.symtab import Symbol

_U32 = 0xFFFFFFFF
_UNKNOWN_FILE = -2


class _Files:
    """Global file ids for checksum offsets of one module at a time (paths from `/names`)."""

    def __init__(self, names: Names) -> None:
        self.names = names
        self.paths: list[str] = []
        self.ids: dict[str, int] = {}
        self.checksums: dict[int, int] = {}

    def module(self, checksums: dict[int, int]) -> dict[int, int]:
        """Start a module; returns its checksum offset → global file id table."""
        self.checksums = checksums
        return {checksum: self.id(checksum) for checksum in checksums}

    def id(self, checksum: int) -> int:
        name_offset = self.checksums.get(checksum)
        path = self.names.get(name_offset) if name_offset is not None else None
        if path is None:
            return _UNKNOWN_FILE
        fid = self.ids.get(path)
        if fid is None:
            fid = self.ids[path] = len(self.paths)
            self.paths.append(path)
        return fid


def _line_rows(segments: list[Segment]) -> Any:
    """`LINE_DTYPE` rows of the innermost segment at each address; a row with file -1 where none covers."""
    c = Collector()
    c.start_unit()
    for i, (lo, hi, depth, _f, _l) in enumerate(segments):
        if hi > lo:
            c.unit_depth.append(depth)
            c.unit_low.append(lo)
            c.unit_high.append(hi)
            c.unit_node.append(i)
        else:
            c.unit_depth.append(depth)
    steps = unit_steps(c)
    index = steps["n"].astype(np.int64)
    table = np.array([(f, line) for _lo, _hi, _d, f, line in segments] + [(-1, 0)], dtype=np.int64)
    picked = table[np.where(index < 0, len(segments), index)]
    out = np.zeros(len(steps), dtype=LINE_DTYPE)
    out["a"] = steps["a"]
    out["f"] = picked[:, 0]
    out["l"] = picked[:, 1] & _U32
    out["p"] = out["f"] != -1
    return out


class _Converter:
    def __init__(self, msf: Msf, dbi: Dbi, budget: Budget, publics: dict[int, str]) -> None:
        self.msf, self.dbi, self.publics = msf, dbi, publics
        self.files = _Files(Names(msf, read_info(msf)))
        self.inlinees = InlineeNames(msf)
        self.tree = InlineTree()
        self.symbols: list[Symbol] = []
        self.data = DwarfData(self.files.paths, RunStore(LINE_DTYPE, budget), RunStore(STEP_DTYPE, budget),
                              ChunkStore(NODE_DTYPE, budget), ChunkStore(np.int32, budget), self.tree.functions,
                              budget)

    def run(self) -> None:
        for module in self.dbi.modules:
            stream = self.msf.stream(module.stream)
            if stream is None:
                continue
            mod = read_module(stream.read_all(), module.sym_bytes, module.c11_bytes, module.c13_bytes)
            self._module(mod)
            self.data.budget.check()
        self.data.lines.finish()
        self.data.steps.finish()

    def _module(self, mod: ModuleDebug) -> None:
        files = self.files
        file_ids = files.module(mod.checksums)
        base: list[Segment] = []
        for block in mod.lines:
            start = self.dbi.rva(block.segment, block.offset)
            if start is None:
                continue
            fid = files.id(block.file)
            rows = sorted(block.rows)
            for i, (off, line) in enumerate(rows):
                end = rows[i + 1][0] if i + 1 < len(rows) else max(block.length, off)
                if end > off:
                    base.append((start + off, start + end, 0, fid, line))
        base.sort()
        lines = [(lo, hi, f, line) for lo, hi, _d, f, line in base]
        segments = list(base)
        tree = self.tree
        tree.c.start_unit()
        first_node = len(tree.node_function)
        for proc in mod.procedures:
            rva = self.dbi.rva(proc.segment, proc.offset)
            if rva is None:
                continue
            name = self.publics.get(rva, proc.name)
            self.symbols.append(Symbol(rva, rva + max(proc.length, 1), name))
            if proc.sites:
                site_rows = [sorted([(rva + lo, rva + hi, file_ids.get(f, _UNKNOWN_FILE), line)
                                     for lo, hi, f, line in site.rows]) for site in proc.sites]
                names = [self.inlinees.name(site.inlinee) for site in proc.sites]
                segments.extend(add_procedure(tree, proc, rva, name, lines, site_rows, names))
        self.data.lines.append(_line_rows(segments))
        self.data.steps.append(unit_steps(tree.c))
        self.data.nodes.append(tree.c.take_nodes())
        self.data.node_function.append(np.array(tree.node_function[first_node:], dtype=np.int32))


def _publics(msf: Msf, dbi: Dbi) -> dict[int, str]:
    """RVA → mangled name of the publics in executable sections. Of several publics at one address the
    greatest name wins: the last one in the address map, which LLD sorts by (section, offset, name)
    and llvm-symbolizer's binary search lands on (`fpreset` over `_fpreset` in MinGW's CRT)."""
    out: dict[int, str] = {}
    for segment, offset, name in read_publics(msf, dbi):
        if 1 <= segment <= len(dbi.sections) and dbi.sections[segment - 1].executable:
            rva = dbi.sections[segment - 1].rva + offset
            if name > out.get(rva, ""):
                out[rva] = name
    return out


def _symbol_table(procs: list[Symbol], publics: dict[int, str], dbi: Dbi) -> list[Symbol]:
    """Procedures over the publics layer, as llvm-symbolizer's PDB reader answers.

    Inside a procedure its own symbol names the address. Elsewhere the nearest public at or
    below it in the same section does, unbounded up to the next public (llvm's
    `findPublicSymbolBySectOffset`): so the padding after `outer` is `outer`, and after a static
    function (no public) the public before it. A piece that continues the procedure just
    before it under the same name extends that procedure's symbol instead."""
    out: list[Symbol] = []
    for s in sorted(procs, key=lambda s: (s.address, -s.end)):
        if out and out[-1].address == s.address:
            continue
        if out and out[-1].end > s.address:
            prev = out.pop()
            out.append(Symbol(prev.address, s.address, prev.name))
        out.append(s)
    pub = sorted(publics.items())
    pub_at = [a for a, _ in pub]
    filled: list[Symbol] = []
    for section in dbi.sections:
        if not section.executable:
            continue
        lo, hi = section.rva, section.rva + section.size
        inside = [s for s in out if lo <= s.address < hi]
        cursor = lo
        for s in [*inside, Symbol(hi, hi, "")]:
            _fill(filled, cursor, min(s.address, hi), pub, pub_at, lo)
            if s.end > s.address:
                filled.append(s)
            cursor = max(cursor, s.end)
    return filled


def _fill(out: list[Symbol], start: int, end: int, pub: list[tuple[int, str]], pub_at: list[int],
          section_start: int) -> None:
    """Symbols for [start, end), a gap between procedures, from the publics layer."""
    if end <= start:
        return
    i = bisect_right(pub_at, start) - 1
    first, stop = i + 1, bisect_left(pub_at, end)
    pieces: list[tuple[int, int, str]] = []
    if i >= 0 and pub_at[i] >= section_start:
        pieces.append((start, pub_at[first] if first < stop else end, pub[i][1]))
    for k in range(first, stop):
        pieces.append((pub_at[k], pub_at[k + 1] if k + 1 < stop else end, pub[k][1]))
    for lo, hi, name in pieces:
        if out and out[-1].end == lo and out[-1].name == name:
            prev = out.pop()
            out.append(Symbol(prev.address, hi, name))
        else:
            out.append(Symbol(lo, hi, name))


def build_symcache(path: str | Path, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                   spill_dir: str | Path | None = None) -> bytes:
    """Symcache bytes of a PDB (addresses are RVAs); `MalformedObject` for a broken one,
    `UnsupportedFormat` when it has neither procedures nor publics."""
    with opened_msf(path) as msf:
        dbi = read_dbi(msf)
        if not dbi.sections:
            raise MalformedObject(f"{path}: the PDB has no section headers (segment:offset cannot become RVAs)")
        publics = _publics(msf, dbi)
        conv = _Converter(msf, dbi, Budget(memory_bytes, spill_dir), publics)
        try:
            conv.run()
            if not conv.symbols and not publics:
                raise UnsupportedFormat(f"{path}: a PDB without procedures or public symbols")
            return write(conv.data, _symbol_table(conv.symbols, publics, dbi), dbi.arch)
        finally:
            conv.data.close()
