"""Reading a PE/COFF image's headers: what identifies it and what its own symbols are.

A pure, bounded reader over the file's bytes (a `bytes` object or an `mmap`): the DOS header,
the `PE\\0\\0` signature, the COFF file header, the optional header (PE32 or PE32+), the section
table (long `/123` names through the COFF string table, as MinGW writes its `.debug_*`
sections), the debug directory's CodeView `RSDS` record and the export directory.

Every offset and count read from the file is checked against the file's size before it is used,
and every loop has a bound that comes from the file's size or a fixed cap, so a hostile header
costs at most a few reads and ends in `MalformedObject` (a broken image) or `UnsupportedFormat`
(an `MZ` file that is not a PE image, e.g. a 16-bit DOS program). Nothing here reads code or
DWARF bytes: `symbols.py` does that for the symcache.

Ids, as Sentry/symbolic print them (docs/formats.md, "PE + PDB"):

- `code_id` = `%08X` TimeDateStamp followed by `%x` SizeOfImage, lowercased (`a81e53c66000`);
- `debug_id` = the CodeView GUID (stored little-endian, as `uuid.UUID(bytes_le=…)` reads it)
  and the age as appendix (`58a7559e-63b7-40ac-4c4c-44205044422e-1`);
- `pdb_path` = the PDB path the linker wrote (`app.pdb`, or an absolute Windows path).
"""

from __future__ import annotations

import mmap
import struct
import uuid
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.types import Arch, CodeId, DebugId

DOS_MAGIC = b"MZ"
PE_SIGNATURE = b"PE\0\0"
MAX_DEBUG_ENTRIES = 64
MAX_EXPORTS = 1 << 20
MAX_NAME_BYTES = 4096
MAX_PDB_PATH_BYTES = 4096  # Windows paths stop at 32,767 UTF-16 units; real records are < 300 bytes

Buffer = bytes | mmap.mmap
"""What the reader reads from: the file's bytes, or its mapping (both search in place)."""
_MACHINES = {0x14C: Arch.X86, 0x8664: Arch.X86_64, 0xAA64: Arch.ARM64, 0x1C0: Arch.ARM, 0x1C4: Arch.ARM}
_PE32, _PE32_PLUS = 0x10B, 0x20B
_DIR_EXPORT, _DIR_EXCEPTION, _DIR_DEBUG = 0, 3, 6
_DEBUG_TYPE_CODEVIEW = 2
_FILE_DLL = 0x2000
_COFF = struct.Struct("<HHIIIHH")
_SECTION = struct.Struct("<8sIIIIIIHHI")
_DEBUG_ENTRY = struct.Struct("<IIHHIIII")
_EXPORT_DIR = struct.Struct("<IIHHIIIIIII")


@dataclass(frozen=True, slots=True)
class Section:
    """One section header: `name` (long names resolved), RVA range and where its bytes sit in the file.

    `file_size` is the bytes present in the file for it (at most `virtual_size` when that is set:
    the rest of the raw data is alignment padding)."""

    name: str
    rva: int
    virtual_size: int
    file_offset: int
    file_size: int


@dataclass(frozen=True, slots=True)
class CodeView:
    """The `RSDS` record: which PDB belongs to the image."""

    guid: uuid.UUID
    age: int
    pdb_path: str

    @property
    def debug_id(self) -> DebugId:
        return DebugId(self.guid, self.age)


@dataclass(frozen=True, slots=True)
class PeImage:
    """What identifies a PE image and what the symcache builder needs from its headers.

    `image_base` and `size_of_image` in bytes as the optional header states them; `exports`
    `export_dir` is the export directory's `(rva, size)`; `read_exports` reads the names.
    """

    arch: Arch
    machine: int
    timestamp: int
    image_base: int
    size_of_image: int
    is_dll: bool
    sections: tuple[Section, ...]
    codeview: CodeView | None
    dll_name: str | None
    export_count: int
    export_dir: tuple[int, int]
    has_exception_dir: bool
    exception_dir: tuple[int, int] = (0, 0)
    """The exception directory's `(rva, size)`: x64 `RUNTIME_FUNCTION`s (`native/cfi/pe_unwind.py`)."""

    @property
    def code_id(self) -> CodeId:
        return CodeId(f"{self.timestamp:08X}{self.size_of_image:x}".lower())

    @property
    def debug_id(self) -> DebugId | None:
        return self.codeview.debug_id if self.codeview is not None else None

    @property
    def has_dwarf(self) -> bool:
        return any(s.name == ".debug_info" for s in self.sections)

    def section(self, name: str) -> Section | None:
        return next((s for s in self.sections if s.name == name), None)


class _Bytes:
    """Bounds-checked reads: every access past the end is `MalformedObject` naming what was read."""

    def __init__(self, data: Buffer) -> None:
        self.data = data
        self.size = len(data)

    def take(self, offset: int, length: int, what: str) -> bytes:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise MalformedObject(f"malformed PE: the {what} at {offset:#x}+{length} is outside the file "
                                  f"({self.size} bytes)")
        return bytes(self.data[offset:offset + length])

    def cstring(self, offset: int, what: str, limit: int = MAX_NAME_BYTES) -> str:
        """The NUL-terminated string at `offset`, found in place: only the string itself is copied."""
        if not 0 <= offset < self.size:
            self.take(offset, 1, what)
        stop = min(offset + limit, self.size)
        end = self.data.find(b"\0", offset, stop)
        if end < 0:
            raise MalformedObject(f"malformed PE: the {what} at {offset:#x} has no terminating NUL within "
                                  f"{stop - offset} bytes")
        return bytes(self.data[offset:end]).decode("utf-8", "replace")


def read_pe(data: Buffer) -> PeImage:
    """Parse the headers of the PE image `data`; raises `MalformedObject` / `UnsupportedFormat`."""
    b = _Bytes(data)
    if b.take(0, 2, "DOS header") != DOS_MAGIC:
        raise UnsupportedFormat("not a debug file: no MZ header")
    if b.size < 0x40:
        raise MalformedObject(f"malformed PE: {b.size} bytes, shorter than the DOS header")
    (e_lfanew,) = struct.unpack("<I", b.take(0x3C, 4, "DOS header"))
    if e_lfanew + 4 > b.size or b.take(e_lfanew, 4, "PE signature") != PE_SIGNATURE:
        raise UnsupportedFormat("not a debug file: an MZ (DOS) program without a PE/COFF header")
    machine, n_sections, timestamp, sym_ptr, n_symbols, opt_size, characteristics = _COFF.unpack(
        b.take(e_lfanew + 4, _COFF.size, "COFF header"))
    opt = e_lfanew + 4 + _COFF.size
    (magic,) = struct.unpack("<H", b.take(opt, 2, "optional header"))
    if magic == _PE32:
        image_base, size_of_image, n_dirs_at, dirs_at = *_pe32_fields(b, opt), opt + 92, opt + 96
    elif magic == _PE32_PLUS:
        (image_base,) = struct.unpack("<Q", b.take(opt + 24, 8, "optional header"))
        (size_of_image,) = struct.unpack("<I", b.take(opt + 56, 4, "optional header"))
        n_dirs_at, dirs_at = opt + 108, opt + 112
    else:
        raise MalformedObject(f"malformed PE: optional header magic {magic:#x} (neither PE32 nor PE32+)")
    if opt_size < dirs_at - opt:
        raise MalformedObject(f"malformed PE: optional header of {opt_size} bytes is too short")
    (n_dirs,) = struct.unpack("<I", b.take(n_dirs_at, 4, "optional header"))
    n_dirs = min(n_dirs, (opt_size - (dirs_at - opt)) // 8, 16)
    dirs = [struct.unpack("<II", b.take(dirs_at + 8 * i, 8, "data directory")) for i in range(n_dirs)]
    strtab = sym_ptr + 18 * n_symbols if sym_ptr else 0
    table = b.take(opt + opt_size, n_sections * _SECTION.size, "section table")
    sections = tuple(_section(b, fields, strtab) for fields in _SECTION.iter_unpack(table))
    image = _Image(b, sections)
    export_rva, export_size = dirs[_DIR_EXPORT] if len(dirs) > _DIR_EXPORT else (0, 0)
    dll_name, export_count = _export_header(image, export_rva) if export_rva and export_size else (None, 0)
    debug_rva, debug_size = dirs[_DIR_DEBUG] if len(dirs) > _DIR_DEBUG else (0, 0)
    return PeImage(
        arch=_MACHINES.get(machine, Arch.UNKNOWN),
        machine=machine,
        timestamp=timestamp,
        image_base=image_base,
        size_of_image=size_of_image,
        is_dll=bool(characteristics & _FILE_DLL),
        sections=sections,
        codeview=_codeview(image, debug_rva, debug_size) if debug_rva and debug_size else None,
        dll_name=dll_name,
        export_count=export_count,
        export_dir=(export_rva, export_size),
        has_exception_dir=len(dirs) > _DIR_EXCEPTION and dirs[_DIR_EXCEPTION][1] > 0,
        exception_dir=dirs[_DIR_EXCEPTION] if len(dirs) > _DIR_EXCEPTION else (0, 0),
    )


def _pe32_fields(b: _Bytes, opt: int) -> tuple[int, int]:
    (image_base,) = struct.unpack("<I", b.take(opt + 28, 4, "optional header"))
    (size_of_image,) = struct.unpack("<I", b.take(opt + 56, 4, "optional header"))
    return image_base, size_of_image


def _section(b: _Bytes, fields: tuple[Any, ...], strtab: int) -> Section:
    raw_name, vsize, rva, raw_size, raw_ptr, *_rest = fields
    name = raw_name.rstrip(b"\0").decode("utf-8", "replace")
    if name.startswith("/") and strtab:
        digits = name[1:]
        if not digits.isdigit():
            raise MalformedObject(f"malformed PE: section name {name!r} is not a string-table offset")
        name = b.cstring(strtab + int(digits), "long section name")
    file_size = min(raw_size, vsize) if vsize else raw_size
    if raw_ptr == 0:
        file_size = 0
    elif raw_ptr + file_size > b.size:
        raise MalformedObject(f"malformed PE: section {name} at {raw_ptr:#x}+{file_size} is outside the file "
                              f"({b.size} bytes)")
    return Section(name, rva, vsize or raw_size, raw_ptr, file_size)


class SectionIndex:
    """Sections by RVA, for `at(rva)` in O(log n): 65,535 sections and a million exports stay cheap.

    Sections overlap only in broken images; then the one starting last at or below the RVA answers."""

    def __init__(self, sections: tuple[Section, ...], span: Callable[[Section], int]) -> None:
        self.sorted = sorted((s for s in sections if span(s)), key=lambda s: s.rva)
        self.starts = [s.rva for s in self.sorted]
        self.span = span

    def at(self, rva: int, length: int = 1) -> Section | None:
        i = bisect_right(self.starts, rva) - 1
        if i < 0:
            return None
        s = self.sorted[i]
        return s if rva + length <= s.rva + self.span(s) else None


class _Image:
    """RVA → file offset through the section table (and the headers, which map 1:1)."""

    def __init__(self, b: _Bytes, sections: tuple[Section, ...]) -> None:
        self.b = b
        self.index = SectionIndex(sections, lambda s: s.file_size)
        self.headers_end = min((s.file_offset for s in sections if s.file_size), default=b.size)

    def offset(self, rva: int, length: int, what: str) -> int:
        s = self.index.at(rva, length)
        if s is not None:
            return s.file_offset + rva - s.rva
        if 0 <= rva and rva + length <= self.headers_end:
            return rva
        raise MalformedObject(f"malformed PE: the {what} at RVA {rva:#x}+{length} is not in any section's file data")

    def take(self, rva: int, length: int, what: str) -> bytes:
        return self.b.take(self.offset(rva, length, what), length, what)

    def cstring(self, rva: int, what: str, limit: int = MAX_NAME_BYTES) -> str:
        return self.b.cstring(self.offset(rva, 1, what), what, limit)


def rva_reader(data: Buffer, pe: PeImage) -> Callable[[int, int, str], bytes]:
    """`take(rva, length, what)`: the image's bytes at an RVA, through its section table
    (`MalformedObject` where no section's file data holds them)."""
    return _Image(_Bytes(data), pe.sections).take


def _codeview(image: _Image, rva: int, size: int) -> CodeView | None:
    """The first CodeView `RSDS` entry of the debug directory (older `NB10` records have no GUID: None)."""
    for i in range(min(size // _DEBUG_ENTRY.size, MAX_DEBUG_ENTRIES)):
        _c, _t, _maj, _min, kind, data_size, _addr, pointer = _DEBUG_ENTRY.unpack(
            image.take(rva + i * _DEBUG_ENTRY.size, _DEBUG_ENTRY.size, "debug directory"))
        if kind != _DEBUG_TYPE_CODEVIEW:
            continue
        if data_size < 24:
            raise MalformedObject(f"malformed PE: a CodeView record of {data_size} bytes")
        head = image.b.take(pointer, 24, "CodeView record")
        if head[:4] != b"RSDS":
            return None
        path = image.b.cstring(pointer + 24, "CodeView PDB path", min(data_size - 24, MAX_PDB_PATH_BYTES))
        (age,) = struct.unpack("<I", head[20:24])
        return CodeView(uuid.UUID(bytes_le=head[4:20]), age, path)
    return None


def _export_header(image: _Image, rva: int) -> tuple[str | None, int]:
    """The export directory's DLL name and its number of named exports."""
    fields = _EXPORT_DIR.unpack(image.take(rva, _EXPORT_DIR.size, "export directory"))
    name_rva, n_names = fields[4], fields[7]
    name = image.cstring(name_rva, "export DLL name") if name_rva else None
    return name or None, min(n_names, MAX_EXPORTS)


def read_exports(data: Buffer, pe: PeImage) -> list[tuple[int, str]]:
    """The named exports as `(rva, name)`, sorted by RVA; forwarders (RVA inside the export directory) left out."""
    b = _Bytes(data)
    image = _Image(b, pe.sections)
    header_rva, header_size = pe.export_dir
    if not header_rva or not pe.export_count:
        return []
    fields = _EXPORT_DIR.unpack(image.take(header_rva, _EXPORT_DIR.size, "export directory"))
    n_functions, n_names, functions_rva, names_rva, ordinals_rva = fields[6], fields[7], *fields[8:11]
    n_names = min(n_names, MAX_EXPORTS)
    if n_functions > MAX_EXPORTS:
        raise MalformedObject(f"malformed PE: {n_functions} exported functions")
    addresses = struct.unpack(f"<{n_functions}I", image.take(functions_rva, 4 * n_functions, "export address table"))
    names = struct.unpack(f"<{n_names}I", image.take(names_rva, 4 * n_names, "export name table"))
    ordinals = struct.unpack(f"<{n_names}H", image.take(ordinals_rva, 2 * n_names, "export ordinal table"))
    out: list[tuple[int, str]] = []
    for name_rva, ordinal in zip(names, ordinals, strict=True):
        if ordinal >= n_functions:
            raise MalformedObject(f"malformed PE: export ordinal {ordinal} of {n_functions} functions")
        address = addresses[ordinal]
        if not address or header_rva <= address < header_rva + header_size:
            continue  # forwarded to another DLL: no code here
        name = image.cstring(name_rva, "export name")
        if name:
            out.append((address, name))
    out.sort()
    return out

