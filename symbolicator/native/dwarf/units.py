"""The DIE walk: function ranges and the inline tree of every compile unit.

Only three kinds of DIE matter for symbolication: the unit itself (bases,
compilation directory, line program), `DW_TAG_subprogram` (names, concrete
ranges, the targets of `abstract_origin`/`specification`) and
`DW_TAG_inlined_subroutine` (ranges, call file/line, nesting). Everything else
is skipped by size. Each abbreviation is compiled once into a *plan*: a tuple of
steps that either decode an interesting attribute or skip bytes, with runs of
fixed-size attributes folded into one skip. That keeps the per-DIE cost low
enough for DWARF of tens of MB without pyelftools' DIE objects.

Results go into a `Collector` shared by all units: `nodes` are concrete
functions (depth 0) and inlined calls (depth > 0) with a parent link; names are
resolved later, across units, because an origin may live in another unit.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from symbolicator.errors import MalformedObject
from symbolicator.native.dwarf import forms as F
from symbolicator.native.dwarf.forms import Reader, Strings
from symbolicator.native.dwarf.ranges import RangeReader

# Attribute slots decoded for the interesting tags.
S_NAME, S_LINKAGE, S_LOW, S_HIGH, S_RANGES, S_ORIGIN, S_SPEC = 0, 1, 2, 3, 4, 5, 6
S_CALL_FILE, S_CALL_LINE, S_CALL_COL, S_STMT, S_COMP_DIR, S_STR_BASE, S_ADDR_BASE, S_RNG_BASE = range(7, 15)
N_SLOTS = 15

K_OTHER, K_UNIT, K_SUB, K_INLINE = 0, 1, 2, 3
_TAG_KIND = {0x11: K_UNIT, 0x3C: K_UNIT, 0x4A: K_UNIT, 0x2E: K_SUB, 0x1D: K_INLINE}
_SLOTS_BY_KIND = {
    K_UNIT: {0x03: S_NAME, 0x11: S_LOW, 0x10: S_STMT, 0x1B: S_COMP_DIR, 0x72: S_STR_BASE, 0x73: S_ADDR_BASE,
             0x74: S_RNG_BASE},
    K_SUB: {0x03: S_NAME, 0x6E: S_LINKAGE, 0x2007: S_LINKAGE, 0x11: S_LOW, 0x12: S_HIGH, 0x55: S_RANGES,
            0x31: S_ORIGIN, 0x47: S_SPEC},
    K_INLINE: {0x11: S_LOW, 0x12: S_HIGH, 0x55: S_RANGES, 0x31: S_ORIGIN, 0x58: S_CALL_FILE,
               0x59: S_CALL_LINE, 0x57: S_CALL_COL},
}
_REF_LOCAL = frozenset({F.FORM_REF1, F.FORM_REF2, F.FORM_REF4, F.FORM_REF8, F.FORM_REF_UDATA})
_ADDRESS_FORMS = frozenset({F.FORM_ADDR}) | F.ADDRX_FORMS
MAX_DIE_DEPTH = 4096
NO_NAME = -1
NODE_DTYPE = np.dtype([("origin", "<i8"), ("parent", "<i4"), ("cf", "<i4"), ("cl", "<u4"), ("cc", "<u4"),
                       ("entry", "<u8")])
"""A node as `Collector.take_nodes` hands it over: origin DIE offset, parent node (-1: none), call
file (global id), line and column, entry address."""

Value = tuple[int, int | str]  # (form, raw value) of a decoded attribute
Step = tuple[int, int, int]  # (slot or -1, form, fixed size or -1 / implicit const)
Plan = tuple[int, bool, tuple[Step, ...], int]  # kind, has children, steps, total size when all fixed else -1
_ULEB_FORMS = frozenset({F.FORM_UDATA, F.FORM_SDATA, F.FORM_REF_UDATA, F.FORM_STRX, F.FORM_ADDRX, F.FORM_LOCLISTX,
                         F.FORM_RNGLISTX, F.FORM_GNU_ADDR_INDEX, F.FORM_GNU_STR_INDEX})


def _ints() -> array[int]:
    return array("q")


@dataclass(slots=True)
class Collector:
    """Everything the DIE walk found, as compact typed columns (8 bytes a value, no object per row).

    Names: one row per subprogram DIE that has a name, a linkage name or a reference, in DIE
    offset order: `name_die`, `name_name`, `name_linkage` (a `.debug_str` offset, `NO_NAME`, or
    `-2 - i` for `inline_names[i]`, a string stored in the DIE itself) and `name_ref` (the
    referenced DIE offset or -1). Nodes: functions (parent -1) and inlined calls, with their
    entry address (lowest range start); parents and call files as i32, call lines and columns
    as u32 (what the symcache stores). The ranges of the current unit only (`unit_*`): the
    caller turns them into step rows when the unit ends and they are cleared.
    """

    name_die: array[int] = field(default_factory=_ints)
    name_name: array[int] = field(default_factory=_ints)
    name_linkage: array[int] = field(default_factory=_ints)
    name_ref: array[int] = field(default_factory=_ints)
    inline_names: list[str] = field(default_factory=list)
    node_origin: array[int] = field(default_factory=_ints)
    node_parent: array[int] = field(default_factory=lambda: array("i"))
    node_call_file: array[int] = field(default_factory=lambda: array("i"))
    node_call_line: array[int] = field(default_factory=lambda: array("I"))
    node_call_col: array[int] = field(default_factory=lambda: array("I"))
    node_entry: array[int] = field(default_factory=lambda: array("Q"))
    nodes_before: int = 0  # nodes already handed over by `take_nodes`: node ids go on from there
    unit_first_node: int = 0
    unit_depth: list[int] = field(default_factory=list)
    unit_low: list[int] = field(default_factory=list)
    unit_high: list[int] = field(default_factory=list)
    unit_node: list[int] = field(default_factory=list)

    def name_code(self, value: int | str | None) -> int:
        if value is None:
            return NO_NAME
        if isinstance(value, str):
            self.inline_names.append(value)
            return -1 - len(self.inline_names)
        return value

    def take_nodes(self) -> Any:
        """The nodes collected since the last call, as `NODE_DTYPE` records; the columns are emptied."""
        n = len(self.node_origin)
        out = np.empty(n, dtype=NODE_DTYPE)
        for name, column in (("origin", self.node_origin), ("parent", self.node_parent),
                             ("cf", self.node_call_file), ("cl", self.node_call_line),
                             ("cc", self.node_call_col), ("entry", self.node_entry)):
            out[name] = np.frombuffer(column, dtype=out.dtype[name].newbyteorder("="))
            del column[:]
        self.nodes_before += n
        return out

    def start_unit(self) -> None:
        self.unit_first_node = self.nodes_before + len(self.node_origin)
        self.unit_depth.clear()
        self.unit_low.clear()
        self.unit_high.clear()
        self.unit_node.clear()



def parse_abbrevs(data: bytes, offset: int) -> dict[int, tuple[int, bool, list[tuple[int, int, int]]]]:
    """One abbreviation table: code → (tag, has_children, [(attribute, form, implicit const)])."""
    r = Reader(data, offset)
    table: dict[int, tuple[int, bool, list[tuple[int, int, int]]]] = {}
    while True:
        code = r.uleb()
        if code == 0:
            return table
        tag = r.uleb()
        children = r.u8() != 0
        attrs = []
        while True:
            at = r.uleb()
            form = r.uleb()
            implicit = r.sleb() if form == F.FORM_IMPLICIT_CONST else 0
            if at == 0 and form == 0:
                break
            attrs.append((at, form, implicit))
        table[code] = (tag, children, attrs)


def compile_plan(tag: int, children: bool, attrs: list[tuple[int, int, int]], addr_size: int,
                 offset_size: int, version: int) -> Plan:
    kind = _TAG_KIND.get(tag, K_OTHER)
    wanted = _SLOTS_BY_KIND.get(kind, {})
    steps: list[Step] = []
    run = 0
    for at, form, implicit in attrs:
        slot = wanted.get(at, -1)
        size = F.form_size(form, addr_size, offset_size, version)
        if slot < 0 and size is not None:
            run += size
            continue
        if run:
            steps.append((-1, 0, run))
            run = 0
        if form == F.FORM_IMPLICIT_CONST:
            steps.append((slot, form, implicit))
        else:
            steps.append((slot, form, -1 if size is None else size))
    if run:
        steps.append((-1, 0, run))
    fixed = -1
    if kind == K_OTHER:
        fixed = 0 if not steps else (steps[0][2] if len(steps) == 1 and steps[0][0] < 0 and steps[0][1] == 0 else -1)
    return (kind, children, tuple(steps), fixed)


def _int(val: Value | None, default: int) -> int:
    return int(val[1]) if val is not None else default


def _skip_variable(d: bytes, pos: int, form: int) -> int:
    if form == F.FORM_STRING:
        end = F.find_nul(d, pos)
        if end < 0:
            raise MalformedObject("unterminated DWARF string")
        return end + 1
    if form in (F.FORM_BLOCK1,):
        return pos + 1 + d[pos]
    if form == F.FORM_BLOCK2:
        return pos + 2 + int.from_bytes(d[pos:pos + 2], "little")
    if form == F.FORM_BLOCK4:
        return pos + 4 + int.from_bytes(d[pos:pos + 4], "little")
    length = 0
    shift = 0
    while True:
        b = d[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        if b < 0x80:
            break
        shift += 7
    if form in (F.FORM_BLOCK, F.FORM_EXPRLOC):
        return pos + length
    return pos


class UnitWalker:
    """Walks every compile unit of `.debug_info` into a `Collector`.

    `on_unit(stmt_list, comp_dir, cu_name, strings, addr_size)` returns the
    unit's file table (local file index → global file id) for call_file values.
    """

    def __init__(self, sections: dict[str, bytes], little_endian: bool,
                 on_unit: Callable[[int, str, str, Strings, int], list[int]],
                 on_unit_end: Callable[[Collector], None] | None = None) -> None:
        self.info = sections.get("debug_info", b"")
        self.abbrev = sections.get("debug_abbrev", b"")
        self.sections = sections
        self.le = little_endian
        self.on_unit = on_unit
        self.on_unit_end = on_unit_end
        self.out = Collector()
        self._abbrev_cache: dict[int, dict[int, tuple[int, bool, list[tuple[int, int, int]]]]] = {}
        self._plan_cache: dict[tuple[int, int, int, int], dict[int, Plan]] = {}
        self._max_addr = (1 << 64) - 1

    def walk(self) -> Collector:
        info = self.info
        pos = 0
        while pos + 11 <= len(info):
            r = Reader(info, pos, self.le)
            length = r.u32()
            offset_size = 4
            if length == 0xFFFFFFFF:
                length = r.u64()
                offset_size = 8
            elif length >= 0xFFFFFFF0:
                raise MalformedObject(f"bad DWARF unit length at {pos:#x}")
            end = r.pos + length
            if end > len(info):
                raise MalformedObject(f"DWARF unit at {pos:#x} runs past .debug_info")
            r.offset_size = offset_size
            version = r.u16()
            if not 2 <= version <= 5:
                raise MalformedObject(f"unsupported DWARF version {version} at {pos:#x}")
            unit_type = 1
            if version >= 5:
                unit_type = r.u8()
                addr_size = r.u8()
                abbrev_offset = r.offset()
                if unit_type in (2, 6):
                    pos = end
                    continue
                if unit_type in (4, 5):
                    r.u64()
            else:
                abbrev_offset = r.offset()
                addr_size = r.u8()
            if addr_size not in (4, 8):
                raise MalformedObject(f"unsupported DWARF address size {addr_size}")
            self.out.start_unit()
            self._walk_unit(pos, r.pos, end, version, addr_size, offset_size, abbrev_offset)
            if self.on_unit_end is not None:
                self.on_unit_end(self.out)
            pos = end
        return self.out

    def _plans(self, abbrev_offset: int, addr_size: int, offset_size: int, version: int) -> dict[int, Plan]:
        key = (abbrev_offset, addr_size, offset_size, version)
        plans = self._plan_cache.get(key)
        if plans is None:
            table = self._abbrev_cache.get(abbrev_offset)
            if table is None:
                if abbrev_offset >= len(self.abbrev):
                    raise MalformedObject("DWARF abbreviation offset past .debug_abbrev")
                table = self._abbrev_cache[abbrev_offset] = parse_abbrevs(self.abbrev, abbrev_offset)
            plans = {code: compile_plan(t, c, a, addr_size, offset_size, version) for code, (t, c, a) in table.items()}
            self._plan_cache[key] = plans
        return plans

    def _walk_unit(self, unit_offset: int, pos: int, end: int, version: int, addr_size: int,
                   offset_size: int, abbrev_offset: int) -> None:
        d = self.info
        self._max_addr = (1 << (8 * addr_size)) - 1
        plans = self._plans(abbrev_offset, addr_size, offset_size, version)
        strings = Strings(self.sections.get("debug_str", b""), self.sections.get("debug_line_str", b""),
                          self.sections.get("debug_str_offsets", b""), 8, offset_size, self.le)
        ranges = RangeReader(self.sections, addr_size, offset_size, version, self.le)
        file_map: list[int] = []
        # scope stack: for each open DIE with children, the node id its inlined children attach to
        scopes: list[int] = []
        scope = -1
        first = True
        byteorder: Literal["little", "big"] = "little" if self.le else "big"
        u16 = struct.Struct("<H" if self.le else ">H").unpack_from
        u32 = struct.Struct("<I" if self.le else ">I").unpack_from
        u64 = struct.Struct("<Q" if self.le else ">Q").unpack_from
        while pos < end:
            die_offset = pos
            code = d[pos]
            pos += 1
            if code >= 0x80:
                code &= 0x7F
                shift = 7
                while True:
                    b = d[pos]
                    pos += 1
                    code |= (b & 0x7F) << shift
                    if b < 0x80:
                        break
                    shift += 7
            if code == 0:
                if not scopes:
                    break
                scope = scopes.pop()
                continue
            plan = plans.get(code)
            if plan is None:
                raise MalformedObject(f"DWARF DIE at {die_offset:#x} uses unknown abbreviation {code}")
            kind, children, steps, fixed = plan
            if kind == K_OTHER:
                if fixed >= 0:
                    pos += fixed
                else:
                    for _slot, form, size in steps:
                        if size >= 0:
                            pos += size
                        elif form in _ULEB_FORMS:
                            while d[pos] >= 0x80:
                                pos += 1
                            pos += 1
                        elif form == F.FORM_INDIRECT:
                            r = Reader(d, pos, self.le)
                            r.offset_size = offset_size
                            r.form_value(r.uleb(), addr_size, version)
                            pos = r.pos
                        else:
                            pos = _skip_variable(d, pos, form)
                if children:
                    scopes.append(scope)
                    if len(scopes) > MAX_DIE_DEPTH:
                        raise MalformedObject("DWARF DIE tree too deep")
                continue
            vals: list[Value | None] = [None] * N_SLOTS
            for slot, form, size in steps:
                if slot < 0:
                    if size >= 0:
                        pos += size
                    elif form == F.FORM_INDIRECT:
                        r = Reader(d, pos, self.le)
                        r.offset_size = offset_size
                        r.form_value(r.uleb(), addr_size, version)
                        pos = r.pos
                    else:
                        pos = _skip_variable(d, pos, form)
                    continue
                if form == F.FORM_IMPLICIT_CONST:
                    vals[slot] = (form, size)
                elif size == 4:
                    vals[slot] = (form, u32(d, pos)[0])
                    pos += 4
                elif size == 8:
                    vals[slot] = (form, u64(d, pos)[0])
                    pos += 8
                elif size == 1:
                    vals[slot] = (form, d[pos])
                    pos += 1
                elif size == 2:
                    vals[slot] = (form, u16(d, pos)[0])
                    pos += 2
                elif size > 0:
                    if size > 8:
                        pos += size
                        continue
                    vals[slot] = (form, int.from_bytes(d[pos:pos + size], byteorder))
                    pos += size
                elif size == 0:
                    vals[slot] = (form, 1)
                elif form == F.FORM_STRING:
                    e = F.find_nul(d, pos)
                    if e < 0:
                        raise MalformedObject("unterminated DWARF string")
                    vals[slot] = (form, bytes(d[pos:e]).decode("utf-8", "replace"))
                    pos = e + 1
                elif form == F.FORM_SDATA:
                    r = Reader(d, pos, self.le)
                    vals[slot] = (form, r.sleb())
                    pos = r.pos
                elif form == F.FORM_INDIRECT:
                    r = Reader(d, pos, self.le)
                    r.offset_size = offset_size
                    real = r.uleb()
                    value = r.form_value(real, addr_size, version)
                    vals[slot] = (real, value)
                    pos = r.pos
                elif form in (F.FORM_BLOCK, F.FORM_BLOCK1, F.FORM_BLOCK2, F.FORM_BLOCK4, F.FORM_EXPRLOC):
                    pos = _skip_variable(d, pos, form)
                else:
                    v = 0
                    shift = 0
                    while True:
                        b = d[pos]
                        pos += 1
                        v |= (b & 0x7F) << shift
                        if b < 0x80:
                            break
                        shift += 7
                    vals[slot] = (form, v)
            if kind == K_UNIT and first:
                first = False
                file_map = self._unit_header(vals, strings, ranges, addr_size)
            inner = scope
            if kind == K_SUB:
                inner = self._subprogram(unit_offset, die_offset, vals, strings, ranges)
            elif kind == K_INLINE:
                inner = self._inlined(unit_offset, vals, ranges, scope, file_map)
            if children:
                scopes.append(scope)
                scope = inner
                if len(scopes) > MAX_DIE_DEPTH:
                    raise MalformedObject("DWARF DIE tree too deep")

    def _unit_header(self, vals: list[Value | None], strings: Strings, ranges: RangeReader,
                     addr_size: int) -> list[int]:
        strings.str_offsets_base = _int(vals[S_STR_BASE], strings.str_offsets_base)
        ranges.addr_base = _int(vals[S_ADDR_BASE], ranges.addr_base)
        ranges.rnglists_base = _int(vals[S_RNG_BASE], ranges.rnglists_base)
        low = vals[S_LOW]
        if low is not None:
            ranges.base = ranges.address(low[0], int(low[1]))
        comp = vals[S_COMP_DIR]
        cu_name = vals[S_NAME]
        comp_dir = strings.resolve(comp[0], comp[1]) if comp is not None else ""
        name = strings.resolve(cu_name[0], cu_name[1]) if cu_name is not None else ""
        stmt = vals[S_STMT]
        if stmt is None:
            return []
        return self.on_unit(int(stmt[1]), comp_dir, name, strings, addr_size)

    def _name(self, val: Value | None, strings: Strings) -> int | str | None:
        if val is None:
            return None
        form, value = val
        if isinstance(value, str):
            return value
        if form in F.STRX_FORMS:
            return strings.strx_offset(value)
        if form == F.FORM_LINE_STRP:
            return strings.at(strings.line_str, value)
        return value

    def _ref(self, unit_offset: int, val: Value | None) -> int:
        if val is None:
            return -1
        form, value = val
        return unit_offset + int(value) if form in _REF_LOCAL else int(value)

    def _ranges_of(self, vals: list[Value | None], ranges: RangeReader) -> list[tuple[int, int]]:
        rng = vals[S_RANGES]
        if rng is not None:
            return ranges.read(rng[0], int(rng[1]))
        low = vals[S_LOW]
        if low is None:
            return []
        lo = ranges.address(low[0], int(low[1]))
        high = vals[S_HIGH]
        if high is None:
            return [(lo, lo + 1)]
        hi = ranges.address(high[0], int(high[1])) if high[0] in _ADDRESS_FORMS else lo + int(high[1])
        return [(lo, hi)]

    def _add_node(self, origin: int, parent: int, depth: int, call: tuple[int, int, int],
                  spans: list[tuple[int, int]]) -> int:
        out = self.out
        origins = out.node_origin
        node = out.nodes_before + len(origins)
        origins.append(origin)
        out.node_parent.append(parent)
        out.unit_depth.append(depth)
        out.node_call_file.append(call[0])
        out.node_call_line.append(call[1] & 0xFFFFFFFF)  # the symcache keeps 32 bits, as before
        out.node_call_col.append(call[2] & 0xFFFFFFFF)
        top = self._max_addr
        entry = 0
        for lo, hi in spans:
            if lo and hi > lo and lo < top - 1:  # 0, -1 and -2 are linkers' tombstones for dropped code
                out.unit_low.append(lo)
                out.unit_high.append(hi if hi < top else top)
                out.unit_node.append(node)
                if not entry or lo < entry:
                    entry = lo
        out.node_entry.append(entry)
        return node

    def _subprogram(self, unit_offset: int, die_offset: int, vals: list[Value | None],
                    strings: Strings, ranges: RangeReader) -> int:
        offset = die_offset
        ref = self._ref(unit_offset, vals[S_ORIGIN] if vals[S_ORIGIN] is not None else vals[S_SPEC])
        name = self._name(vals[S_NAME], strings)
        linkage = self._name(vals[S_LINKAGE], strings)
        if name is not None or linkage is not None or ref >= 0:
            out = self.out
            out.name_die.append(offset)
            out.name_name.append(out.name_code(name))
            out.name_linkage.append(out.name_code(linkage))
            out.name_ref.append(ref)
        spans = self._ranges_of(vals, ranges)
        if not spans:
            return -2
        return self._add_node(offset, -1, 0, (-1, 0, 0), spans)

    def _inlined(self, unit_offset: int, vals: list[Value | None], ranges: RangeReader,
                 scope: int, file_map: list[int]) -> int:
        """An inlined call: a node under `scope` (the hot path of the walk, hence spelled out)."""
        if scope < 0:
            return scope
        low = vals[S_LOW]
        if vals[S_RANGES] is None and low is not None:
            lo = ranges.indexed_address(int(low[1])) if low[0] in F.ADDRX_FORMS else int(low[1])
            high = vals[S_HIGH]
            if high is None:
                hi = lo + 1
            elif high[0] in _ADDRESS_FORMS:
                hi = ranges.address(high[0], int(high[1]))
            else:
                hi = lo + int(high[1])
            spans = [(lo, hi)]
        else:
            spans = self._ranges_of(vals, ranges)
            if not spans:
                return -2
        origin = vals[S_ORIGIN]
        ref = -1 if origin is None else (unit_offset + int(origin[1]) if origin[0] in _REF_LOCAL else int(origin[1]))
        cf = vals[S_CALL_FILE]
        idx = int(cf[1]) if cf is not None else -1
        call_file = file_map[idx] if 0 <= idx < len(file_map) else -1
        cl = vals[S_CALL_LINE]
        cc = vals[S_CALL_COL]
        out = self.out
        depth = out.unit_depth[scope - out.unit_first_node] + 1
        return self._add_node(ref, scope, depth, (call_file, int(cl[1]) if cl is not None else 0,
                                                  int(cc[1]) if cc is not None else 0), spans)
