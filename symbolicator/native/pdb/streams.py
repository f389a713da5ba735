"""The PDB's fixed streams: PDB info (GUID, age, named streams), DBI (modules, machine, age,
section headers), the `/names` string table and the public symbols.

Each reader takes an `Msf` and parses only the headers and tables it needs: the module list is
a few hundred bytes a module, the section headers forty bytes a section, the publics one tuple
a public. Module symbol streams are read later, one at a time, by `modules.py`.

Offsets and counts come from the file, so each is checked against the stream it points into;
a violation is a `MalformedObject` naming the field.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from symbolicator.errors import MalformedObject
from symbolicator.native.pdb.msf import Msf, Stream
from symbolicator.types import Arch

PDB_STREAM, TPI_STREAM, DBI_STREAM, IPI_STREAM = 1, 2, 3, 4
_INFO = struct.Struct("<III16s")
_DBI = struct.Struct("<iIIHHHHHHiiiiiIiiHHI")
_MODINFO = struct.Struct("<I28sHHIIIHHIII")
_SECTION = struct.Struct("<8sIIIIIIHHI")
S_PUB32 = 0x110E
SECTION_HEADERS_DBG = 5  # index of the section header stream in the DBI optional debug header
_EXECUTE = 0x20000000 | 0x00000020  # IMAGE_SCN_MEM_EXECUTE | IMAGE_SCN_CNT_CODE
MACHINES = {0x8664: Arch.X86_64, 0x14C: Arch.X86, 0xAA64: Arch.ARM64, 0x1C0: Arch.ARM, 0x1C2: Arch.ARM,
            0x1C4: Arch.ARMV7, 0x200: Arch.UNKNOWN}


@dataclass(frozen=True, slots=True)
class PdbInfo:
    """Stream 1: the GUID (as written, little-endian fields), the info stream's age, named streams."""

    guid: uuid.UUID
    age: int
    names: dict[str, int]


@dataclass(frozen=True, slots=True)
class Module:
    """One DBI module (an object file): its symbol stream and the byte sizes of its parts."""

    name: str
    stream: int
    sym_bytes: int
    c11_bytes: int
    c13_bytes: int


@dataclass(frozen=True, slots=True)
class Section:
    """A PE section from the section header stream: RVA, size in memory, characteristics."""

    rva: int
    size: int
    characteristics: int

    @property
    def executable(self) -> bool:
        return bool(self.characteristics & _EXECUTE)


@dataclass(frozen=True, slots=True)
class Dbi:
    """What the converter needs from stream 3: age, machine, modules, sections and stream numbers."""

    age: int
    arch: Arch
    modules: list[Module]
    sections: list[Section]
    symbol_records: int
    publics: int

    def rva(self, segment: int, offset: int) -> int | None:
        """segment:offset → RVA (segments are 1-based section numbers); None when out of range."""
        if 1 <= segment <= len(self.sections):
            return self.sections[segment - 1].rva + offset
        return None


def _cstring(data: bytes, pos: int, stop: int | None = None) -> tuple[str, int]:
    """The NUL-terminated string at `pos` (before `stop`) and the offset after its NUL."""
    end = data.find(b"\0", pos, len(data) if stop is None else stop)
    if end < 0:
        raise MalformedObject("PDB string runs past the end of its record")
    return data[pos:end].decode("utf-8", "replace"), end + 1


def read_info(msf: Msf) -> PdbInfo:
    """Stream 1; `MalformedObject` when it is missing or short."""
    s = msf.require(PDB_STREAM, "PDB info")
    head = s.read(0, min(s.size, 1 << 16))
    if len(head) < _INFO.size:
        raise MalformedObject(f"PDB info stream of {len(head)} bytes")
    _version, _signature, age, guid = _INFO.unpack_from(head, 0)
    return PdbInfo(uuid.UUID(bytes_le=guid), age, _named_streams(head, _INFO.size))


def _named_streams(data: bytes, pos: int) -> dict[str, int]:
    """The named stream map (a serialized hash table of name offset → stream); {} when absent or cut."""
    try:
        (buf_len,) = struct.unpack_from("<I", data, pos)
        strings = data[pos + 4:pos + 4 + buf_len]
        pos += 4 + buf_len
        size, _capacity = struct.unpack_from("<II", data, pos)
        pos += 8
        (words,) = struct.unpack_from("<I", data, pos)
        present = struct.unpack_from(f"<{words}I", data, pos + 4)
        pos += 4 + 4 * words
        (deleted_words,) = struct.unpack_from("<I", data, pos)
        pos += 4 + 4 * deleted_words
        out: dict[str, int] = {}
        n_present = sum(bin(w).count("1") for w in present)
        for _ in range(min(size, n_present)):
            key, value = struct.unpack_from("<II", data, pos)
            pos += 8
            if key < len(strings):
                out[_cstring(strings, key)[0]] = value
        return out
    except (struct.error, MalformedObject):
        return {}


def read_dbi(msf: Msf) -> Dbi:
    """Stream 3: header, module infos, optional debug header (section header stream)."""
    s = msf.require(DBI_STREAM, "DBI")
    if s.size < _DBI.size:
        raise MalformedObject(f"PDB DBI stream of {s.size} bytes is shorter than its header")
    (_sig, _ver, age, _gsi, _build, publics, _dll, sym_records, _rbld, mod_size, contrib_size, map_size,
     source_size, tsm_size, _mfc, dbg_size, ec_size, _flags, machine, _pad) = _DBI.unpack(s.read(0, _DBI.size))
    sizes = (mod_size, contrib_size, map_size, source_size, tsm_size, ec_size, dbg_size)
    if any(n < 0 for n in sizes) or _DBI.size + sum(sizes) > s.size:
        raise MalformedObject(f"PDB DBI substreams ({sum(sizes)} bytes) overrun the {s.size}-byte stream")
    modules = _modules(s.read(_DBI.size, mod_size))
    dbg_at = _DBI.size + sum(sizes[:-1])
    dbg = s.read(dbg_at, dbg_size - dbg_size % 2)
    streams = struct.unpack(f"<{len(dbg) // 2}H", dbg)
    sections: list[Section] = []
    if len(streams) > SECTION_HEADERS_DBG and streams[SECTION_HEADERS_DBG] != 0xFFFF:
        sections = _sections(msf.stream(streams[SECTION_HEADERS_DBG]))
    return Dbi(age, MACHINES.get(machine, Arch.UNKNOWN), modules, sections, sym_records, publics)


def _modules(data: bytes) -> list[Module]:
    out: list[Module] = []
    pos = 0
    while pos + _MODINFO.size <= len(data):
        (_u1, _contrib, _flags, stream, sym_bytes, c11, c13, _nfiles, _pad, _u2, _src, _pdb) = \
            _MODINFO.unpack_from(data, pos)
        name, at = _cstring(data, pos + _MODINFO.size)
        _obj, at = _cstring(data, at)
        pos = (at + 3) & ~3
        out.append(Module(name, stream, sym_bytes, c11, c13))
    return out


def _sections(s: Stream | None) -> list[Section]:
    if s is None:
        return []
    data = s.read(0, s.size - s.size % _SECTION.size)
    out = []
    for i in range(0, len(data), _SECTION.size):
        _name, vsize, rva, raw_size, _raw, _rel, _ln, _nrel, _nln, chars = _SECTION.unpack_from(data, i)
        out.append(Section(rva, max(vsize, raw_size) if vsize == 0 else vsize, chars))
    return out


class Names:
    """The `/names` string table: file names of the line tables, by byte offset."""

    def __init__(self, msf: Msf, info: PdbInfo) -> None:
        self._data = b""
        index = info.names.get("/names")
        s = msf.stream(index) if index is not None else None
        if s is not None and s.size >= 12:
            magic, _hash, size = struct.unpack("<III", s.read(0, 12))
            if magic == 0xEFFEEFFE:
                self._data = s.read(12, min(size, s.size - 12))
        self._cache: dict[int, str] = {}

    def get(self, offset: int) -> str | None:
        name = self._cache.get(offset)
        if name is None:
            if offset >= len(self._data):
                return None
            try:
                name = _cstring(self._data, offset)[0]
            except MalformedObject:
                return None
            self._cache[offset] = name
        return name


def read_publics(msf: Msf, dbi: Dbi) -> Iterator[tuple[int, int, str]]:
    """(segment, offset, mangled name) of every S_PUB32 in the symbol record stream.

    The stream is walked in slices of a few MB, so its size does not matter."""
    s = msf.stream(dbi.symbol_records)
    if s is None:
        return
    chunk = 4 << 20
    pos = 0
    carry = b""
    while pos < s.size:
        n = min(chunk, s.size - pos)
        data = carry + s.read(pos, n)
        pos += n
        at = 0
        while at + 4 <= len(data):
            length, kind = struct.unpack_from("<HH", data, at)
            if length < 2:
                raise MalformedObject(f"PDB public symbol record of length {length}")
            if at + 2 + length > len(data):
                break
            if kind == S_PUB32 and length >= 12:
                _flags, offset, segment = struct.unpack_from("<IIH", data, at + 4)
                yield segment, offset, _cstring(data, at + 14, at + 2 + length)[0]
            at += 2 + length
        carry = data[at:]
    if len(carry) >= 4:
        raise MalformedObject("PDB symbol record stream ends inside a record")
