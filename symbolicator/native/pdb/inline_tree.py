"""A procedure's inline sites as symcache nodes, with the caller's line taken at each address.

DWARF gives an inlined call one call line; in a PDB the caller's line is whatever the caller's
own rows say at the address (the C13 table for the outermost call, the parent site's
annotations for a nested one), and it can change inside one inlined call: llvm-symbolizer and
symbolic both report `main … :30` at one end of an inlined `push_back` and `:27` at the other.
So the procedure is cut into elementary intervals at every row boundary; in each, the chain of
covering sites is found level by level (one bisect in the siblings' merged rows; siblings do
not overlap in compiler output, and at equal starts the first in record order wins, as in llvm's
`findInlineFramesByVA`), and a node is made per distinct
(parent node, site, call file, call line). The innermost node gets the interval as a range; the
innermost row gives the line of the interval (`Segment`, depth 1 so it beats the C13 row).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from symbolicator.native.dwarf.units import Collector
from symbolicator.native.pdb.modules import Procedure

_U32 = 0xFFFFFFFF
Segment = tuple[int, int, int, int, int]  # start, end, depth, global file id, line
Row = tuple[int, int, int, int]  # start, end, global file id, line


class InlineTree:
    """Nodes (a `Collector`, one unit per module) and the function index of each node."""

    def __init__(self) -> None:
        self.c = Collector()
        self.functions: list[str | None] = []
        self.function_index: dict[str, int] = {}
        self.node_function: list[int] = []

    def node(self, parent: int, depth: int, name: str, call: tuple[int, int], entry: int) -> int:
        c = self.c
        index = c.nodes_before + len(c.node_origin)
        c.node_origin.append(index)
        c.node_parent.append(parent)
        c.unit_depth.append(depth)
        c.node_call_file.append(call[0])
        c.node_call_line.append(call[1] & _U32)
        c.node_call_col.append(0)
        c.node_entry.append(entry)
        f = self.function_index.get(name)
        if f is None:
            f = self.function_index[name] = len(self.functions)
            self.functions.append(name)
        self.node_function.append(f)
        return index

    def add_range(self, node: int, lo: int, hi: int) -> None:
        self.c.unit_low.append(lo)
        self.c.unit_high.append(hi)
        self.c.unit_node.append(node)


def _levels(proc: Procedure, site_rows: list[list[Row]]) -> dict[int, list[tuple[int, int, int, int, int]]]:
    """Per parent (-1: the procedure), its children's rows merged: `(start, -site, end, file, line)` sorted,
    so one bisect finds the covering sibling (at equal starts the first site in record order)."""
    levels: dict[int, list[tuple[int, int, int, int, int]]] = {}
    for i, site in enumerate(proc.sites):
        levels.setdefault(site.parent, []).extend((lo, -i, hi, f, line) for lo, hi, f, line in site_rows[i])
    for rows in levels.values():
        rows.sort()
    return levels


def add_procedure(tree: InlineTree, proc: Procedure, rva: int, name: str, base: list[Row],
                  site_rows: list[list[Row]], site_names: list[str]) -> list[Segment]:
    """Nodes for `proc` (RVA `rva`, symbol `name`) whose sites have rows `site_rows` (RVAs, sorted, in
    record order) and names `site_names`; `base` is the module's C13 rows, sorted. Returns the line
    segments of the inlined intervals."""
    levels = _levels(proc, site_rows)
    edges = {x for rows in site_rows for r in rows for x in (r[0], r[1])}
    if not edges:
        return []
    lo_all, hi_all = min(edges), max(edges)
    first, stop = bisect_right(base, (lo_all, 1 << 64)), bisect_left(base, (hi_all,))
    edges.update(r[0] for r in base[first:stop])
    bounds = sorted(edges)
    root = tree.node(-1, 0, name, (-1, 0), rva)
    tree.add_range(root, rva, rva + max(proc.length, 1))
    made: dict[tuple[int, int, int, int], int] = {}
    open_range: dict[int, list[int]] = {}
    out: list[Segment] = []
    top_rows = levels.get(-1)
    far = 1 << 64
    for a, b in zip(bounds, bounds[1:], strict=False):
        i = bisect_right(base, (a, far)) - 1
        caller = (base[i][2], base[i][3]) if i >= 0 and base[i][1] > a else (-1, 0)
        parent, level, rows = root, 0, top_rows
        line: tuple[int, int] | None = None
        while rows:
            i = bisect_right(rows, (a, far)) - 1
            if i < 0:
                break
            row = rows[i]
            if row[2] <= a:
                break
            s = -row[1]
            level += 1
            key = (parent, s, *caller)
            node = made.get(key)
            if node is None:
                node = made[key] = tree.node(parent, level, site_names[s], caller, a)
            parent = node
            caller = line = (row[3], row[4])
            rows = levels.get(s)
        if line is None:
            continue
        span = open_range.get(parent)
        if span is not None and span[1] == a:
            span[1] = b
        else:
            if span is not None:
                tree.add_range(parent, span[0], span[1])
            open_range[parent] = [a, b]
        out.append((a, b, 1, line[0], line[1]))
    for node, (lo, hi) in open_range.items():
        tree.add_range(node, lo, hi)
    return out
