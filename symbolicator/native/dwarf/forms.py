"""Low-level DWARF decoding shared by the line-program and unit readers.

`Reader` is a cursor over one section's bytes for the cold parts (headers,
abbreviations); the hot loops in `units.py` and `lines.py` inline their
own LEB128 decoding instead. `FORM_SIZES` gives the fixed size of a form for a
unit's address and offset sizes, or None when the size is in the data.
"""

from __future__ import annotations

from dataclasses import dataclass

from symbolicator.errors import MalformedObject

# Forms (DWARF 5 §7.5.6) and GNU extensions.
FORM_ADDR, FORM_BLOCK2, FORM_BLOCK4, FORM_DATA2, FORM_DATA4, FORM_DATA8 = 0x01, 0x03, 0x04, 0x05, 0x06, 0x07
FORM_STRING, FORM_BLOCK, FORM_BLOCK1, FORM_DATA1, FORM_FLAG, FORM_SDATA = 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D
FORM_STRP, FORM_UDATA, FORM_REF_ADDR, FORM_REF1, FORM_REF2, FORM_REF4 = 0x0E, 0x0F, 0x10, 0x11, 0x12, 0x13
FORM_REF8, FORM_REF_UDATA, FORM_INDIRECT, FORM_SEC_OFFSET, FORM_EXPRLOC = 0x14, 0x15, 0x16, 0x17, 0x18
FORM_FLAG_PRESENT, FORM_STRX, FORM_ADDRX, FORM_REF_SUP4, FORM_STRP_SUP = 0x19, 0x1A, 0x1B, 0x1C, 0x1D
FORM_DATA16, FORM_LINE_STRP, FORM_REF_SIG8, FORM_IMPLICIT_CONST = 0x1E, 0x1F, 0x20, 0x21
FORM_LOCLISTX, FORM_RNGLISTX, FORM_REF_SUP8 = 0x22, 0x23, 0x24
FORM_STRX1, FORM_STRX2, FORM_STRX3, FORM_STRX4 = 0x25, 0x26, 0x27, 0x28
FORM_ADDRX1, FORM_ADDRX2, FORM_ADDRX3, FORM_ADDRX4 = 0x29, 0x2A, 0x2B, 0x2C
FORM_GNU_ADDR_INDEX, FORM_GNU_STR_INDEX, FORM_GNU_REF_ALT, FORM_GNU_STRP_ALT = 0x1F01, 0x1F02, 0x1F20, 0x1F21

STRX_FORMS = frozenset({FORM_STRX, FORM_STRX1, FORM_STRX2, FORM_STRX3, FORM_STRX4, FORM_GNU_STR_INDEX})
ADDRX_FORMS = frozenset({FORM_ADDRX, FORM_ADDRX1, FORM_ADDRX2, FORM_ADDRX3, FORM_ADDRX4, FORM_GNU_ADDR_INDEX})


def form_size(form: int, addr_size: int, offset_size: int, version: int) -> int | None:
    """Fixed byte size of `form`, None when variable; unknown forms are malformed."""
    fixed = {
        FORM_ADDR: addr_size, FORM_DATA1: 1, FORM_DATA2: 2, FORM_DATA4: 4, FORM_DATA8: 8, FORM_DATA16: 16,
        FORM_FLAG: 1, FORM_FLAG_PRESENT: 0, FORM_IMPLICIT_CONST: 0, FORM_REF1: 1, FORM_REF2: 2, FORM_REF4: 4,
        FORM_REF8: 8, FORM_REF_SIG8: 8, FORM_REF_SUP4: 4, FORM_REF_SUP8: 8, FORM_STRP: offset_size,
        FORM_LINE_STRP: offset_size, FORM_SEC_OFFSET: offset_size, FORM_STRP_SUP: offset_size,
        FORM_GNU_REF_ALT: offset_size, FORM_GNU_STRP_ALT: offset_size,
        FORM_REF_ADDR: addr_size if version <= 2 else offset_size,
        FORM_STRX1: 1, FORM_STRX2: 2, FORM_STRX3: 3, FORM_STRX4: 4,
        FORM_ADDRX1: 1, FORM_ADDRX2: 2, FORM_ADDRX3: 3, FORM_ADDRX4: 4,
    }
    if form in fixed:
        return fixed[form]
    if form in (FORM_STRING, FORM_BLOCK, FORM_BLOCK1, FORM_BLOCK2, FORM_BLOCK4, FORM_EXPRLOC, FORM_SDATA,
                FORM_UDATA, FORM_REF_UDATA, FORM_INDIRECT, FORM_STRX, FORM_ADDRX, FORM_LOCLISTX,
                FORM_RNGLISTX, FORM_GNU_ADDR_INDEX, FORM_GNU_STR_INDEX):
        return None
    raise MalformedObject(f"unknown DWARF form {form:#x}")


class Reader:
    """A bounds-checked cursor over a section (headers and other cold paths)."""

    __slots__ = ("data", "pos", "le", "offset_size", "_bo")

    def __init__(self, data: bytes, pos: int = 0, little_endian: bool = True) -> None:
        self.data = data
        self.pos = pos
        self.le = little_endian
        self.offset_size = 4
        self._bo: str = "little" if little_endian else "big"

    def _take(self, n: int) -> bytes:
        p = self.pos
        if n < 0 or p + n > len(self.data):
            raise MalformedObject("DWARF data runs past the end of its section")
        self.pos = p + n
        return self.data[p:p + n]

    def uint(self, n: int) -> int:
        return int.from_bytes(self._take(n), self._bo)  # type: ignore[arg-type]

    def u8(self) -> int:
        return self.uint(1)

    def s8(self) -> int:
        v = self.uint(1)
        return v - 256 if v > 127 else v

    def u16(self) -> int:
        return self.uint(2)

    def u32(self) -> int:
        return self.uint(4)

    def u64(self) -> int:
        return self.uint(8)

    def offset(self) -> int:
        return self.uint(self.offset_size)

    def uleb(self) -> int:
        d = self.data
        v = 0
        shift = 0
        while True:
            if self.pos >= len(d):
                raise MalformedObject("DWARF LEB128 runs past the end of its section")
            b = d[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            if b < 0x80:
                return v
            shift += 7

    def sleb(self) -> int:
        d = self.data
        v = 0
        shift = 0
        while True:
            if self.pos >= len(d):
                raise MalformedObject("DWARF LEB128 runs past the end of its section")
            b = d[self.pos]
            self.pos += 1
            v |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                return v - (1 << shift) if b & 0x40 else v

    def cstr(self) -> str:
        end = find_nul(self.data, self.pos)
        if end < 0:
            raise MalformedObject("unterminated string in DWARF data")
        s = bytes(self.data[self.pos:end]).decode("utf-8", "replace")
        self.pos = end + 1
        return s

    def form_value(self, form: int, addr_size: int, version: int = 5) -> int | str:
        """Read one attribute value; strings come back decoded, everything else as an int."""
        if form == FORM_STRING:
            return self.cstr()
        if form == FORM_INDIRECT:
            return self.form_value(self.uleb(), addr_size, version)
        if form in (FORM_SDATA,):
            return self.sleb()
        if form in (FORM_UDATA, FORM_REF_UDATA, FORM_STRX, FORM_ADDRX, FORM_LOCLISTX, FORM_RNGLISTX,
                    FORM_GNU_ADDR_INDEX, FORM_GNU_STR_INDEX):
            return self.uleb()
        if form in (FORM_BLOCK, FORM_EXPRLOC):
            self._take(self.uleb())
            return 0
        if form == FORM_BLOCK1:
            self._take(self.u8())
            return 0
        if form == FORM_BLOCK2:
            self._take(self.u16())
            return 0
        if form == FORM_BLOCK4:
            self._take(self.u32())
            return 0
        size = form_size(form, addr_size, self.offset_size, version)
        assert size is not None
        if size > 8:
            self._take(size)
            return 0
        return self.uint(size) if size else (1 if form == FORM_FLAG_PRESENT else 0)


@dataclass(slots=True)
class Strings:
    """The string sections, and how each string form reaches them."""

    debug_str: bytes = b""
    line_str: bytes = b""
    str_offsets: bytes = b""
    str_offsets_base: int = 8
    offset_size: int = 4
    little_endian: bool = True

    def at(self, section: bytes, offset: int) -> str:
        if not 0 <= offset < len(section):
            raise MalformedObject(f"DWARF string offset {offset:#x} past its section")
        end = find_nul(section, offset)
        if end < 0:
            end = len(section)
        return bytes(section[offset:end]).decode("utf-8", "replace")

    def strx_offset(self, index: int) -> int:
        pos = self.str_offsets_base + index * self.offset_size
        if pos + self.offset_size > len(self.str_offsets):
            raise MalformedObject(f"DWARF string index {index} past .debug_str_offsets")
        return int.from_bytes(self.str_offsets[pos:pos + self.offset_size], "little" if self.little_endian else "big")

    def resolve(self, form: int, value: int | str) -> str:
        if isinstance(value, str):
            return value
        if form == FORM_LINE_STRP:
            return self.at(self.line_str, value)
        if form in STRX_FORMS:
            return self.at(self.debug_str, self.strx_offset(value))
        if form in (FORM_STRP, FORM_GNU_STRP_ALT, FORM_STRP_SUP):
            return self.at(self.debug_str, value)
        raise MalformedObject(f"DWARF form {form:#x} is not a string")



def find_nul(data: bytes | bytearray | memoryview, pos: int) -> int:
    """`data.find(b"\\0", pos)` for bytes and for memoryviews (which have no `find`)."""
    if not isinstance(data, memoryview):
        return data.find(b"\0", pos)
    n = 64
    while True:
        chunk = bytes(data[pos:pos + n])
        i = chunk.find(b"\0")
        if i >= 0:
            return pos + i
        if pos + n >= len(data):
            return -1
        n *= 4
