"""A symcache from a Breakpad `.sym` file: FUNC / LINE / INLINE / PUBLIC records into the same
tables the DWARF path fills (`symcache_build.write`), so lookups, inline expansion and
`sym_addr` work alike for both kinds of debug file.

FUNC records become root nodes and symbols; INLINE records nodes under the FUNC (depth 0) or
under the last INLINE one level up, with the call site's file and line; LINE records the line
table (a gap where a record ends without a next one). PUBLIC records become symbols reaching to
the next symbol, as minidump-stackwalk reads them. Addresses are module-relative, which is the
address space the service looks a frame up in for a module with `image_vmaddr` 0.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from symbolicator.errors import UnsupportedFormat
from symbolicator.native.breakpad_sym import SymFile, parse
from symbolicator.native.dwarf import LINE_DTYPE, STEP_DTYPE, DwarfData, unit_steps
from symbolicator.native.dwarf.units import NODE_DTYPE, Collector
from symbolicator.native.spill import DEFAULT_MEMORY_BYTES, Budget, ChunkStore, RunStore
from symbolicator.native.symcache_build import write
from symbolicator.native.symtab import LAST_ADDRESS, Symbol

_U32 = 0xFFFFFFFF  # the symcache keeps 32-bit lines, as the DWARF path does


def _line_table(sym: SymFile, file_index: dict[int, int]) -> Any:
    """`LINE_DTYPE` rows, one per address in increasing order; a row with file -1 (priority 0, an end
    of sequence) where a record ends without a next one. Overlapping records: the first one wins.
    A record whose FILE id has no FILE record is a gap as well (no file, no line)."""
    records = sorted((a, s, line, f) for func in sym.funcs for a, s, line, f in func.lines if s)
    rows: list[tuple[int, int, int]] = []
    for i, (a, size, line, f) in enumerate(records):
        if rows and rows[-1][0] == a:
            rows.pop()
        if not rows or rows[-1][0] < a:
            rows.append((a, file_index.get(f, -1), line))
        end = a + size
        if i + 1 == len(records) or records[i + 1][0] != end:
            rows.append((end, -1, 0))
    kept: list[tuple[int, int, int]] = []
    for row in rows:
        if not kept or kept[-1][0] < row[0]:
            kept.append(row)
    out = np.zeros(len(kept), dtype=LINE_DTYPE)
    if kept:
        out["a"] = np.array([r[0] for r in kept], dtype=np.uint64)
        out["f"] = np.array([r[1] for r in kept], dtype=np.int64)
        out["l"] = np.array([r[2] & _U32 for r in kept], dtype=np.uint64)
        out["p"] = out["f"] != -1
    return out


def _nodes(sym: SymFile, file_index: dict[int, int]) -> tuple[Collector, list[int], list[str | None]]:
    """The inline tree as one DWARF unit: nodes and ranges in a `Collector` (`take_nodes`, `unit_steps`),
    each node's function index, and the function names."""
    c = Collector()
    c.start_unit()
    functions: list[str | None] = []
    function_index: dict[str, int] = {}
    node_function: list[int] = []

    def function(name: str) -> int:
        if name not in function_index:
            function_index[name] = len(functions)
            functions.append(name)
        return function_index[name]

    def node(parent: int, depth: int, name: str, call_file: int, call_line: int,
             ranges: list[tuple[int, int]]) -> int:
        index = c.nodes_before + len(c.node_origin)
        c.node_origin.append(index)  # no DIE here: only the writer reads the node table
        c.node_parent.append(parent)
        c.unit_depth.append(depth)
        c.node_call_file.append(call_file)
        c.node_call_line.append(call_line & _U32)
        c.node_call_col.append(0)
        node_function.append(function(name))
        lows: list[int] = []
        for lo, hi in ranges:
            if hi > lo:
                c.unit_low.append(lo)
                c.unit_high.append(hi)
                c.unit_node.append(index)
                lows.append(lo)
        c.node_entry.append(min(lows, default=0))  # the entry address: the lowest range start
        return index

    for func in sym.funcs:
        if not func.inlines:
            continue  # without inlines the symbol alone names the function
        last = {0: node(-1, 0, func.name, -1, 0, [(func.address, func.address + func.size)])}
        for inline in sorted(func.inlines, key=lambda i: (min(r[0] for r in i.ranges), i.depth)):
            parent = last.get(inline.depth)
            if parent is None:
                continue
            name = sym.origins.get(inline.origin, "")
            last[inline.depth + 1] = node(parent, inline.depth + 1, name, file_index.get(inline.call_file, -1),
                                          inline.call_line, inline.ranges)
    return c, node_function, functions


def _symbols(sym: SymFile) -> list[Symbol]:
    funcs = {f.address: Symbol(f.address, f.address + max(f.size, 1), f.name) for f in sym.funcs}
    publics = sorted((a, n) for a, n in sym.publics if a not in funcs)
    starts = sorted(set(funcs) | {a for a, _ in publics})
    out = list(funcs.values())
    for a, name in publics:
        i = starts.index(a) if len(starts) < 64 else int(np.searchsorted(starts, a))
        end = starts[i + 1] if i + 1 < len(starts) else LAST_ADDRESS
        out.append(Symbol(a, end, name))
    out.sort(key=lambda s: s.address)
    clipped: list[Symbol] = []
    for s in out:
        if clipped and clipped[-1].end > s.address:
            prev = clipped.pop()
            clipped.append(Symbol(prev.address, s.address, prev.name, prev.file))
        clipped.append(s)
    return clipped


def build_symcache(path: str | Path) -> bytes:
    """Symcache bytes of a `.sym` file; `UnsupportedFormat` when it has no FUNC or PUBLIC record.

    The tables go through the streaming writer like DWARF's: line rows and inline steps in run
    stores, the node table and its function indices in chunk stores, under a default `Budget`
    (a `.sym` file is small, nothing is spilled in practice)."""
    sym = parse(Path(path))
    if not sym.funcs and not sym.publics:
        raise UnsupportedFormat(f"{path}: a Breakpad symbol file without FUNC or PUBLIC records")
    file_ids = sorted(sym.files)
    file_index = {fid: i for i, fid in enumerate(file_ids)}
    budget = Budget(DEFAULT_MEMORY_BYTES)
    dwarf = DwarfData([sym.files[f] for f in file_ids], RunStore(LINE_DTYPE, budget), RunStore(STEP_DTYPE, budget),
                      ChunkStore(NODE_DTYPE, budget), ChunkStore(np.int32, budget), [], budget)
    try:
        dwarf.lines.append(_line_table(sym, file_index))
        collector, node_function, dwarf.functions = _nodes(sym, file_index)
        dwarf.steps.append(unit_steps(collector))
        dwarf.nodes.append(collector.take_nodes())
        dwarf.node_function.append(np.array(node_function, dtype=np.int32))
        budget.check()
        dwarf.lines.finish()
        dwarf.steps.finish()
        return write(dwarf, _symbols(sym), sym.arch)
    finally:
        dwarf.close()
