"""ELF identification: build-id, arch, kind and features, read from headers only.

The file header and the section/program header tables are checked against the file size with
`struct` *before* pyelftools sees the file, so a truncated or lying file gives a precise
`MalformedObject` instead of a library exception; pyelftools then walks sections and notes on
the open stream (lazily: only the header tables, `.shstrtab`, the notes, `.gnu_debuglink`,
`.dynamic` and at most one page of `.text` are read, never the DWARF).

Identifiers follow symbolic (Sentry): `code_id` is the NT_GNU_BUILD_ID hex; `debug_id` is its
first 16 bytes as a GUID, the first three fields byte-swapped on little-endian files. Without a
build-id there is no `code_id`, and `debug_id` is the first page (4096 bytes) of `.text` XORed
into 16 bytes, byte-swapped the same way (Breakpad's and symbolic's fallback).
"""

from __future__ import annotations

import errno
import struct
import uuid
from dataclasses import dataclass
from typing import Any, BinaryIO

from elftools.common.exceptions import ELFError
from elftools.construct import ConstructError
from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile

from symbolicator.errors import MalformedObject
from symbolicator.types import Arch, CodeId, DebugId

ELF_MAGIC = b"\x7fELF"
MAX_BUILD_ID = 40
TEXT_HASH_PAGE = 4096
MAX_DEBUGLINK = 4096

_SHT_NOBITS = "SHT_NOBITS"
_SHT_NOBITS_VALUE = 8
_ET = {1: "object", 2: "executable", 3: "library", 4: "other"}
_MACHINES = {3: Arch.X86, 62: Arch.X86_64, 183: Arch.ARM64, 40: Arch.ARM, 20: Arch.PPC, 21: Arch.PPC64}


@dataclass(frozen=True, slots=True)
class ElfFacts:
    """What identification needs from one ELF file; `image_vmaddr` is the lowest PT_LOAD p_vaddr."""

    arch: Arch
    code_id: CodeId | None
    debug_id: DebugId | None
    object_type: str
    has_debug_info: bool
    has_symbols: bool
    has_unwind_info: bool
    image_vmaddr: int
    debug_link: str | None
    soname: str | None


@dataclass(frozen=True, slots=True)
class _Header:
    is64: bool
    little: bool
    e_type: int
    e_machine: int
    phoff: int
    phentsize: int
    phnum: int
    shoff: int
    shentsize: int
    shnum: int


def _check_header(f: BinaryIO, size: int) -> _Header:
    """Parse the ELF header with struct and bound both header tables by the file size."""
    ident = f.read(16)
    if len(ident) < 16:
        raise MalformedObject(f"truncated ELF: {size} bytes, shorter than e_ident")
    if ident[4] not in (1, 2) or ident[5] not in (1, 2):
        raise MalformedObject(f"invalid ELF: EI_CLASS={ident[4]} EI_DATA={ident[5]}")
    is64, little = ident[4] == 2, ident[5] == 1
    e = "<" if little else ">"
    fmt = e + ("HHIQQQIHHHHHH" if is64 else "HHIIIIIHHHHHH")
    rest = f.read(struct.calcsize(fmt))
    if len(rest) < struct.calcsize(fmt):
        raise MalformedObject(f"truncated ELF: {size} bytes, shorter than the ELF header")
    (e_type, e_machine, _ver, _entry, phoff, shoff, _flags, _ehsize, phentsize, phnum,
     shentsize, shnum, _shstrndx) = struct.unpack(fmt, rest)
    if phnum:
        if phentsize < (56 if is64 else 32):
            raise MalformedObject(f"invalid ELF: e_phentsize {phentsize} too small")
        if phoff + phnum * phentsize > size:
            raise MalformedObject(
                f"truncated ELF: {phnum} program headers at offset {phoff} end past the file size {size}")
    if shoff:
        if shentsize < (64 if is64 else 40):
            raise MalformedObject(f"invalid ELF: e_shentsize {shentsize} too small")
        if shnum == 0:
            f.seek(shoff + (32 if is64 else 20))
            raw = f.read(8 if is64 else 4)
            if len(raw) < (8 if is64 else 4) or shoff + shentsize > size:
                raise MalformedObject(f"truncated ELF: section header 0 at offset {shoff} past the file size {size}")
            shnum = struct.unpack(e + ("Q" if is64 else "I"), raw)[0]
        if shoff + shnum * shentsize > size:
            raise MalformedObject(
                f"truncated ELF: {shnum} section headers at offset {shoff} end past the file size {size}")
        _check_sections(f, e, is64, shoff, shentsize, shnum, size)
    return _Header(is64, little, e_type, e_machine, phoff, phentsize, phnum, shoff, shentsize, shnum)


def _check_sections(f: BinaryIO, e: str, is64: bool, shoff: int, shentsize: int, shnum: int, size: int) -> None:
    """Every section with file data must lie inside the file (checked before pyelftools reads any)."""
    f.seek(shoff)
    table = f.read(shnum * shentsize)
    fmt = e + ("IIQQQQ" if is64 else "IIIIII")
    for i in range(shnum):
        _name, sh_type, _flags, _addr, sh_offset, sh_size = struct.unpack_from(fmt, table, i * shentsize)
        if sh_type != _SHT_NOBITS_VALUE and sh_type != 0 and sh_offset + sh_size > size:
            raise MalformedObject(
                f"truncated ELF: section {i} (offset {sh_offset}, size {sh_size}) ends past the file size {size}")


def _arch(h: _Header) -> Arch:
    if h.e_machine == 8:
        return Arch.MIPS64 if h.is64 else Arch.MIPS
    if h.e_machine == 243:
        return Arch.RISCV64 if h.is64 else Arch.UNKNOWN
    return _MACHINES.get(h.e_machine, Arch.UNKNOWN)


def _debug_id(raw: bytes, little: bool) -> DebugId:
    data = (raw + b"\0" * 16)[:16]
    return DebugId.from_elf_build_id(data) if little else DebugId(uuid.UUID(bytes=data))


def _read_at(f: BinaryIO, offset: int, length: int) -> bytes:
    f.seek(offset)
    return f.read(length)


def read_elf(f: BinaryIO, size: int) -> ElfFacts:
    """Identify the ELF file open in `f` (`size` bytes). Raises MalformedObject."""
    h = _check_header(f, size)
    try:
        return _read_sections(f, size, h)
    except (ELFError, ConstructError, struct.error, IndexError, KeyError, ValueError, UnicodeDecodeError,
            OverflowError, AssertionError) as e:  # pyelftools checks some invariants with `assert`
        raise MalformedObject(f"malformed ELF: {e or type(e).__name__}") from e
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        raise MalformedObject(f"malformed ELF: an offset points outside the file ({e})") from e


def _read_sections(f: BinaryIO, size: int, h: _Header) -> ElfFacts:
    elf = ELFFile(f)
    sections: dict[str, Any] = {}
    for sec in elf.iter_sections():
        sections.setdefault(sec.name, sec)

    def has_data(name: str) -> bool:
        s = sections.get(name)
        return s is not None and s["sh_type"] != _SHT_NOBITS and s["sh_size"] > 0

    build_id = _find_build_id(elf)
    has_interp = False
    image_vmaddr: int | None = None
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_INTERP":
            has_interp = True
        elif seg["p_type"] == "PT_LOAD" and (image_vmaddr is None or seg["p_vaddr"] < image_vmaddr):
            image_vmaddr = seg["p_vaddr"]

    text = sections.get(".text")
    text_nobits = text is not None and text["sh_type"] == _SHT_NOBITS
    if build_id is not None:
        code_id: CodeId | None = CodeId.from_bytes(build_id)
        debug_id: DebugId | None = _debug_id(build_id, h.little)
    else:
        code_id = None
        debug_id = None
        if text is not None and not text_nobits:
            page = _read_at(f, text["sh_offset"], min(text["sh_size"], TEXT_HASH_PAGE))
            digest = bytearray(16)
            for i, b in enumerate(page):
                digest[i % 16] ^= b
            debug_id = _debug_id(bytes(digest), h.little)

    object_type = _ET.get(h.e_type, "other")
    if object_type == "library" and has_interp:
        object_type = "executable"
    if object_type in ("executable", "library") and (text_nobits or (text is None and has_data(".debug_info"))):
        object_type = "debug_companion"

    symbols = any(
        (s := sections.get(n)) is not None and s["sh_type"] != _SHT_NOBITS and s["sh_size"] > max(s["sh_entsize"], 1)
        for n in (".symtab", ".dynsym"))
    return ElfFacts(
        arch=_arch(h),
        code_id=code_id,
        debug_id=debug_id,
        object_type=object_type,
        has_debug_info=has_data(".debug_info") or has_data(".zdebug_info"),
        has_symbols=symbols,
        has_unwind_info=has_data(".eh_frame") or has_data(".debug_frame"),
        image_vmaddr=image_vmaddr or 0,
        debug_link=_debug_link(f, sections.get(".gnu_debuglink")),
        soname=_soname(elf, sections.get(".dynamic")),
    )


def _find_build_id(elf: ELFFile) -> bytes | None:
    """NT_GNU_BUILD_ID from the note sections, else from PT_NOTE segments."""
    sources: list[Any] = [s for s in elf.iter_sections() if s["sh_type"] == "SHT_NOTE"]
    if not sources:
        sources = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_NOTE"]
    for src in sources:
        for note in src.iter_notes():
            if note["n_type"] == "NT_GNU_BUILD_ID" and note["n_name"] == "GNU":
                raw = bytes.fromhex(note["n_desc"])
                if not 1 <= len(raw) <= MAX_BUILD_ID:
                    raise MalformedObject(f"malformed ELF: build-id note of {len(raw)} bytes")
                return raw
    return None


def _debug_link(f: BinaryIO, sec: Any) -> str | None:
    """The file name in `.gnu_debuglink` (NUL-terminated, then padding and a CRC-32)."""
    if sec is None or sec["sh_type"] == _SHT_NOBITS:
        return None
    raw = _read_at(f, sec["sh_offset"], min(sec["sh_size"], MAX_DEBUGLINK))
    name = raw.split(b"\0", 1)[0]
    return name.decode("utf-8", "replace") or None


def _soname(elf: ELFFile, sec: Any) -> str | None:
    """DT_SONAME, a string of the table `.dynamic` links to (which must be one: pyelftools asserts it)."""
    if not isinstance(sec, DynamicSection) or sec["sh_type"] == _SHT_NOBITS:
        return None
    link = sec["sh_link"]
    if not 0 < link < elf.num_sections() or elf.get_section(link)["sh_type"] != "SHT_STRTAB":
        raise MalformedObject(f"malformed ELF: .dynamic links to section {link}, which is not a string table")
    for tag in sec.iter_tags():
        if tag.entry.d_tag == "DT_SONAME":
            return str(getattr(tag, "soname"))  # noqa: B009 (set dynamically; mypy cannot see it)
    return None
