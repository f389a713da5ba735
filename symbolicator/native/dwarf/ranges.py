"""Address ranges of DIEs: `.debug_ranges` (DWARF 2–4), `.debug_rnglists` and `.debug_addr` (DWARF 5).

Separate from the DIE walk because both gcc (`DW_FORM_sec_offset` into
`.debug_rnglists`) and clang (`DW_FORM_rnglistx` through the unit's
`DW_AT_rnglists_base`) forms must resolve the same way, with the unit's base
address applying to offset pairs. Lists are capped so a crafted section cannot
make a walk run forever.
"""

from __future__ import annotations

import struct

from symbolicator.errors import MalformedObject
from symbolicator.native.dwarf import forms as F

MAX_RANGE_ENTRIES = 1_000_000


class RangeReader:
    """Per-unit state (bases) plus the range sections of the file."""

    __slots__ = ("ranges", "rnglists", "addr", "addr_size", "offset_size", "version", "bo", "base",
                 "addr_base", "rnglists_base", "unpack")

    def __init__(self, sections: dict[str, bytes], addr_size: int, offset_size: int, version: int,
                 little_endian: bool) -> None:
        self.ranges = sections.get("debug_ranges", b"")
        self.rnglists = sections.get("debug_rnglists", b"")
        self.addr = sections.get("debug_addr", b"")
        self.addr_size = addr_size
        self.offset_size = offset_size
        self.version = version
        self.bo = "little" if little_endian else "big"
        order = "<" if little_endian else ">"
        self.unpack = {4: struct.Struct(order + "I").unpack_from, 8: struct.Struct(order + "Q").unpack_from}
        self.base = 0
        self.addr_base = 8
        self.rnglists_base = 12 if offset_size == 4 else 20

    def _uint(self, data: bytes, pos: int, size: int) -> int:
        if pos < 0 or pos + size > len(data):
            raise MalformedObject("DWARF range or address entry past its section")
        unpack = self.unpack.get(size)
        if unpack is not None:
            return unpack(data, pos)[0]  # type: ignore[no-any-return]
        return int.from_bytes(data[pos:pos + size], self.bo)  # type: ignore[arg-type]

    def indexed_address(self, index: int) -> int:
        return self._uint(self.addr, self.addr_base + index * self.addr_size, self.addr_size)

    def address(self, form: int, value: int) -> int:
        return self.indexed_address(value) if form in F.ADDRX_FORMS else value

    def read(self, form: int, value: int) -> list[tuple[int, int]]:
        if form == F.FORM_RNGLISTX:
            offset = self.rnglists_base + self._uint(self.rnglists, self.rnglists_base + value * self.offset_size,
                                                     self.offset_size)
            return self._rnglist(offset)
        if self.version >= 5:
            return self._rnglist(value)
        return self._ranges(value)

    def _ranges(self, pos: int) -> list[tuple[int, int]]:
        size = self.addr_size
        top = (1 << (8 * size)) - 1
        base = self.base
        out: list[tuple[int, int]] = []
        for _ in range(MAX_RANGE_ENTRIES):
            begin = self._uint(self.ranges, pos, size)
            end = self._uint(self.ranges, pos + size, size)
            pos += 2 * size
            if begin == 0 and end == 0:
                return out
            if begin == top:
                base = end
                continue
            out.append((base + begin, base + end))
        raise MalformedObject("DWARF range list without an end")

    def _uleb(self, pos: int) -> tuple[int, int]:
        d = self.rnglists
        v = 0
        shift = 0
        while True:
            if pos >= len(d):
                raise MalformedObject("DWARF range list past .debug_rnglists")
            b = d[pos]
            pos += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v, pos
            shift += 7

    def _rnglist(self, pos: int) -> list[tuple[int, int]]:
        d = self.rnglists
        size = self.addr_size
        base = self.base
        out: list[tuple[int, int]] = []
        for _ in range(MAX_RANGE_ENTRIES):
            if pos >= len(d):
                raise MalformedObject("DWARF range list past .debug_rnglists")
            kind = d[pos]
            pos += 1
            if kind == 0:
                return out
            if kind == 1:
                i, pos = self._uleb(pos)
                base = self.indexed_address(i)
            elif kind == 2:
                i, pos = self._uleb(pos)
                j, pos = self._uleb(pos)
                out.append((self.indexed_address(i), self.indexed_address(j)))
            elif kind == 3:
                i, pos = self._uleb(pos)
                n, pos = self._uleb(pos)
                start = self.indexed_address(i)
                out.append((start, start + n))
            elif kind == 4:
                a, pos = self._uleb(pos)
                b, pos = self._uleb(pos)
                out.append((base + a, base + b))
            elif kind == 5:
                base = self._uint(d, pos, size)
                pos += size
            elif kind == 6:
                a = self._uint(d, pos, size)
                b = self._uint(d, pos + size, size)
                pos += 2 * size
                out.append((a, b))
            elif kind == 7:
                a = self._uint(d, pos, size)
                pos += size
                n, pos = self._uleb(pos)
                out.append((a, a + n))
            else:
                raise MalformedObject(f"unknown DWARF range list entry kind {kind}")
        raise MalformedObject("DWARF range list without an end")
