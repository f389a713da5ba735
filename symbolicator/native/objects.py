"""Object identification: what an uploaded or downloaded file is, read from its headers.

`identify(path)` sniffs the first bytes and returns one `ObjectInfo` per object in the file:
one for an ELF file, a thin Mach-O, a PE image or a source bundle, one per arch slice for a universal
(fat) Mach-O. Upload/assemble code stores each object under
`keys.debug_file(scope, code_id, object_kind)`; lookup code uses the same values, so both agree
on ids by construction.

Design notes:

- Headers only. ELF goes through `elf_headers` (pyelftools on the open file, header tables
  bounded by the file size first), Mach-O through `macho_headers` (`struct`, every load command
  validated). Neither reads DWARF, so identifying a 2 GB dSYM costs a few KB of I/O.
- `object_kind` is the storage kind of Sentry's unified layout: `DEBUGINFO` when the object
  carries DWARF (an unstripped ELF, a split `.debug` file, a dSYM or a Mach-O with `__DWARF`),
  `EXECUTABLE` otherwise, `SOURCEBUNDLE` for `SYSB` files.
- Failures are data for the caller: a file of another kind raises `UnsupportedFormat`
  ("not a debug file: …" with the first bytes described), a broken one `MalformedObject`;
  library exceptions are wrapped at this boundary with their cause kept. An `OSError` from
  opening or reading the file passes through unchanged (only a seek to an impossible offset,
  which a lying header causes, becomes `MalformedObject`).
"""

from __future__ import annotations

import errno
import json
import mmap
import os
import struct
import tempfile
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from symbolicator.errors import (
    FormatError,
    InvalidId,
    MalformedObject,
    UnsupportedFormat,
)
from symbolicator.native.elf_headers import ELF_MAGIC, read_elf
from symbolicator.native.macho_headers import (
    FAT_MAGIC,
    FAT_MAGIC_64,
    THIN_MAGICS,
    MachoSlice,
    read_fat,
    read_thin,
)
from symbolicator.native.wasm.module import WASM_MAGIC
from symbolicator.proguard.mapping import looks_like_mapping, scan
from symbolicator.types import Arch, CodeId, DebugId, ObjectKind

SOURCE_BUNDLE_MAGIC = b"SYSB"
BREAKPAD_MAGIC = b"MODULE "  # `breakpad_sym.MAGIC`: a `.sym` file starts with its MODULE line
PE_MAGIC = b"MZ"  # `native/pe/headers.DOS_MAGIC`
PDB_MAGIC = b"Microsoft C/C++ MSF 7.00\r\n\x1aDS\0\0\0"  # `pdb.MSF_MAGIC`: the whole 32-byte head
MAX_MANIFEST_BYTES = 64 << 20
COPY_CHUNK = 1 << 20
_JS_FILE_TYPES = {"minified_source", "source_map", "indexed_ram_bundle"}
_OTHER_FORMATS = [
    (b"MZ", "a PE/COFF executable"), (PDB_MAGIC, "a PDB file"),
    (b"BSJB", "a portable PDB file"), (b"\0asm", "a WebAssembly module"),
    (b"MODULE ", "a Breakpad symbol file"), (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip stream"), (b"!<arch>\n", "an ar archive (static library)"),
]


@dataclass(frozen=True, slots=True)
class ObjectFeatures:
    """What an object can answer: DWARF, a symbol table, unwind tables, embedded sources."""

    has_debug_info: bool = False
    has_symbols: bool = False
    has_unwind_info: bool = False
    has_sources: bool = False


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object in a file.

    `offset`/`size` (bytes) locate it in the file: the whole file unless `fat` (then
    `copy_slice` extracts it). `code_id` is the ELF build-id hex or the Mach-O UUID hex;
    `debug_id` the Sentry/Breakpad debug id. `image_vmaddr` is the stated address of the lowest
    ELF PT_LOAD, the Mach-O `__TEXT` segment or the PE ImageBase (docs/api.md). `object_name` is the ELF DT_SONAME,
    the Mach-O LC_ID_DYLIB install name, the PE export directory's DLL name or a source bundle's `object_name`,
    when present. `debug_link` names the separate debug file: ELF `.gnu_debuglink`, the PDB path of a PE.
    `artifact_bundle` marks a JS artifact bundle (also `file_format == "sourcebundle"`).
    """

    file_format: str
    arch: Arch
    code_id: CodeId | None
    debug_id: DebugId | None
    object_kind: ObjectKind
    object_type: str
    features: ObjectFeatures = field(default_factory=ObjectFeatures)
    offset: int = 0
    size: int = 0
    object_name: str | None = None
    debug_link: str | None = None
    image_vmaddr: int = 0
    fat: bool = False
    artifact_bundle: bool = False


def identify(path: Path) -> list[ObjectInfo]:
    """Every object in the file at `path`; raises UnsupportedFormat / MalformedObject."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        head = f.read(32)
        f.seek(0)
        try:
            return _identify(f, size, head)
        except FormatError:
            raise
        except (struct.error, IndexError, KeyError, ValueError, UnicodeDecodeError, OverflowError,
                zipfile.BadZipFile) as e:
            raise MalformedObject(f"malformed object file: {e}") from e
        except OSError as e:
            if e.errno != errno.EINVAL:
                raise
            raise MalformedObject(f"malformed object file: an offset points outside the file ({e})") from e


def check_magic(head: bytes, size: int) -> None:
    """UnsupportedFormat unless `head` (a file's first 32 bytes) starts a file `identify` reads: lets an upload be
    refused while its client still waits for the answer."""
    if head[:4] in (ELF_MAGIC, SOURCE_BUNDLE_MAGIC, WASM_MAGIC, *THIN_MAGICS) or head.startswith(
            (BREAKPAD_MAGIC, PE_MAGIC, PDB_MAGIC)) or (
            len(head) >= 4 and struct.unpack(">I", head[:4])[0] in (FAT_MAGIC, FAT_MAGIC_64)):
        return
    if looks_like_mapping(head):  # a ProGuard mapping: text, read whole when assembled
        return
    raise UnsupportedFormat(f"not a debug file: {describe_bytes(head, size)}")


def _identify(f: BinaryIO, size: int, head: bytes) -> list[ObjectInfo]:
    if head[:4] == ELF_MAGIC:
        return [_elf_info(f, size)]
    if head[:4] in THIN_MAGICS:
        return [_macho_info(read_thin(f, 0, size), fat=False)]
    if len(head) >= 4 and struct.unpack(">I", head[:4])[0] in (FAT_MAGIC, FAT_MAGIC_64):
        return [_macho_info(s, fat=True) for s in read_fat(f, size)]
    if head[:4] == SOURCE_BUNDLE_MAGIC:
        return [_bundle_info(f, size)]
    if head.startswith(BREAKPAD_MAGIC):
        return [_breakpad_info(f, size)]
    if looks_like_mapping(head):
        return [_proguard_info(f, size)]
    if head[:4] == WASM_MAGIC:
        from symbolicator.native.wasm.identify import wasm_info

        return [wasm_info(f, size)]
    if head == PDB_MAGIC:
        return [_pdb_info(f, size)]
    if head[:2] == PE_MAGIC:
        return [_pe_info(f, size)]
    raise UnsupportedFormat(f"not a debug file: {describe_bytes(head, size)}")


def _pe_info(f: BinaryIO, size: int) -> ObjectInfo:
    """A PE image (`native/pe/`): code id from its headers, debug id and PDB name from its CodeView record.

    Always `EXECUTABLE`, even with MinGW's DWARF inside: its PDB is the `DEBUGINFO` under the same id."""
    from symbolicator.native.pe import read_pe

    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pe = read_pe(mm)
    return ObjectInfo(
        file_format="pe",
        arch=pe.arch,
        code_id=pe.code_id,
        debug_id=pe.debug_id,
        object_kind=ObjectKind.EXECUTABLE,
        object_type="library" if pe.is_dll else "executable",
        features=ObjectFeatures(has_debug_info=pe.has_dwarf, has_symbols=pe.export_count > 0,
                                has_unwind_info=pe.has_exception_dir),
        size=size,
        object_name=pe.dll_name,
        debug_link=pe.codeview.pdb_path if pe.codeview is not None else None,
        image_vmaddr=pe.image_base,
    )


def _elf_info(f: BinaryIO, size: int) -> ObjectInfo:
    e = read_elf(f, size)
    return ObjectInfo(
        file_format="elf",
        arch=e.arch,
        code_id=e.code_id,
        debug_id=e.debug_id,
        object_kind=ObjectKind.DEBUGINFO if e.has_debug_info else ObjectKind.EXECUTABLE,
        object_type=e.object_type,
        features=ObjectFeatures(e.has_debug_info, e.has_symbols, e.has_unwind_info),
        offset=0,
        size=size,
        object_name=e.soname,
        debug_link=e.debug_link,
        image_vmaddr=e.image_vmaddr,
    )


def _breakpad_info(f: BinaryIO, size: int) -> ObjectInfo:
    """A Breakpad `.sym` file (`native/breakpad_sym.py`): ids from its MODULE / INFO CODE_ID lines."""
    from symbolicator.native.breakpad_sym import header

    _os, arch, debug_id, name, code_id, kinds = header(f)
    return ObjectInfo(
        file_format="breakpad",
        arch=arch,
        code_id=code_id,
        debug_id=debug_id,
        object_kind=ObjectKind.BREAKPAD,
        object_type="debug_companion",
        features=ObjectFeatures(has_debug_info=kinds["LINE"], has_symbols=kinds["FUNC"] or kinds["PUBLIC"],
                                has_unwind_info=kinds["STACK"]),
        size=size,
        object_name=name,
    )


def _pdb_info(f: BinaryIO, size: int) -> ObjectInfo:
    """A PDB (`native/pdb`): debug id `guid-age` (the DBI age, as symbolic), arch from the DBI machine."""
    from symbolicator.native.pdb import read_identity

    found = read_identity(f.name)
    return ObjectInfo(
        file_format="pdb",
        arch=found.arch,
        code_id=None,
        debug_id=DebugId(found.guid, found.age),
        object_kind=ObjectKind.DEBUGINFO,
        object_type="debug_companion",
        features=ObjectFeatures(has_debug_info=found.has_debug_info, has_symbols=found.has_symbols),
        size=size,
    )


def _proguard_info(f: BinaryIO, size: int) -> ObjectInfo:
    """A ProGuard / R8 mapping (`proguard/mapping.py`): its debug id is Sentry's mapping UUID."""
    summary = scan(f)
    return ObjectInfo(
        file_format="proguard",
        arch=Arch.UNKNOWN,
        code_id=None,
        debug_id=DebugId(summary.uuid),
        object_kind=ObjectKind.PROGUARD,
        object_type="other",
        features=ObjectFeatures(has_debug_info=summary.has_line_info, has_symbols=True),
        size=size,
    )


def _macho_info(s: MachoSlice, fat: bool) -> ObjectInfo:
    is_debug = s.object_type == "debug_companion" or s.has_dwarf_segment
    return ObjectInfo(
        file_format="macho",
        arch=s.arch,
        code_id=s.code_id,
        debug_id=s.debug_id,
        object_kind=ObjectKind.DEBUGINFO if is_debug else ObjectKind.EXECUTABLE,
        object_type=s.object_type,
        features=ObjectFeatures(s.has_debug_info, s.has_symbols, s.has_unwind_info),
        offset=s.offset,
        size=s.size,
        object_name=s.install_name,
        image_vmaddr=s.image_vmaddr,
        fat=fat,
    )


def read_bundle_manifest(f: BinaryIO) -> dict[str, object]:
    """The `manifest.json` of a `SYSB` file (the ZIP after the 8-byte header)."""
    try:
        with zipfile.ZipFile(f) as z:
            try:
                entry = z.getinfo("manifest.json")
            except KeyError:
                raise MalformedObject("malformed source bundle: no manifest.json") from None
            if entry.file_size > MAX_MANIFEST_BYTES:
                raise MalformedObject(f"malformed source bundle: manifest.json of {entry.file_size} bytes")
            manifest = json.loads(z.read(entry))
    except (zipfile.BadZipFile, zlib.error, json.JSONDecodeError, UnicodeDecodeError, EOFError, NotImplementedError,
            RuntimeError, ValueError, struct.error) as e:
        raise MalformedObject(f"malformed source bundle: {e}") from e
    if not isinstance(manifest, dict):
        raise MalformedObject("malformed source bundle: manifest.json is not an object")
    return manifest


def _manifest_is_artifact(manifest: dict[str, object]) -> bool:
    files = manifest.get("files")
    if not isinstance(files, dict):
        return False
    types = {e.get("type") for e in files.values() if isinstance(e, dict)}
    if types & _JS_FILE_TYPES:
        return True
    return not files and not any(k in manifest for k in ("code_id", "object_name", "arch"))


def _bundle_info(f: BinaryIO, size: int) -> ObjectInfo:
    if size < 8:
        raise MalformedObject(f"truncated source bundle: {size} bytes, shorter than the SYSB header")
    manifest = read_bundle_manifest(f)
    artifact = _manifest_is_artifact(manifest)

    def text(key: str) -> str | None:
        value = manifest.get(key)
        return value if isinstance(value, str) and value else None

    try:
        debug_id = DebugId.parse(d) if (d := text("debug_id")) else None
        code_id = CodeId.parse(c) if (c := text("code_id")) and not artifact else None
    except InvalidId as e:
        raise MalformedObject(f"malformed source bundle manifest: {e}") from e
    return ObjectInfo(
        file_format="sourcebundle",
        arch=Arch.UNKNOWN if artifact else Arch.parse(text("arch")),
        code_id=code_id,
        debug_id=debug_id,
        object_kind=ObjectKind.SOURCEBUNDLE,
        object_type="other",
        features=ObjectFeatures(has_sources=True),
        offset=0,
        size=size,
        object_name=None if artifact else text("object_name"),
        artifact_bundle=artifact,
    )


def is_artifact_bundle(path: Path) -> bool:
    """True for a JS artifact bundle (`SYSB` whose manifest lists minified sources / maps)."""
    with open(path, "rb") as f:
        if f.read(4) != SOURCE_BUNDLE_MAGIC:
            return False
        f.seek(0)
        return _manifest_is_artifact(read_bundle_manifest(f))


def describe_bytes(head: bytes, size: int) -> str:
    """A short human description of a file's first bytes, for error messages."""
    if size == 0:
        return "empty file"
    for magic, what in _OTHER_FORMATS:
        if head.startswith(magic):
            return f"{what} ({size} bytes)"
    shown = head[:16]
    if not shown.strip(b"\0"):
        return f"starts with {len(shown)} zero bytes ({size} bytes)"
    try:
        decoded = shown.decode("utf-8")
        if all(c.isprintable() or c in "\r\n\t" for c in decoded):
            return f"starts with text {decoded!r} ({size} bytes)"
    except UnicodeDecodeError:
        pass
    return f"starts with bytes {shown.hex(' ')} ({size} bytes)"


def find_dsym_files(directory: Path) -> list[Path]:
    """The DWARF files of a `X.dSYM` bundle, or of every `*.dSYM` bundle below `directory`.

    `identify` takes files only; a dSYM is a folder whose payload sits at
    `Contents/Resources/DWARF/<name>` (one file, possibly fat). AppleDouble `._*` files are skipped.
    """
    bundles = [directory] if (directory / "Contents" / "Resources" / "DWARF").is_dir() else sorted(
        p for p in directory.rglob("*.dSYM") if p.is_dir())
    found: list[Path] = []
    for bundle in bundles:
        dwarf_dir = bundle / "Contents" / "Resources" / "DWARF"
        if dwarf_dir.is_dir():
            found.extend(sorted(p for p in dwarf_dir.iterdir() if p.is_file() and not p.name.startswith(".")))
    return found


def copy_slice(path: Path, info: ObjectInfo, dest: Path) -> None:
    """Stream the object `info` of the file at `path` into `dest` as a thin file.

    Copies in 1 MiB chunks into a temporary file beside `dest`, then renames it, so a reader
    never sees half a slice and memory stays flat for multi-GB dSYMs.
    """
    with open(path, "rb") as src:
        total = os.fstat(src.fileno()).st_size
        if info.offset < 0 or info.size <= 0 or info.offset + info.size > total:
            raise MalformedObject(f"slice at {info.offset}+{info.size} is outside {path.name} ({total} bytes)")
        src.seek(info.offset)
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out:
                remaining = info.size
                while remaining:
                    chunk = src.read(min(COPY_CHUNK, remaining))
                    if not chunk:
                        raise MalformedObject(f"{path.name} shrank while its slice was being copied")
                    out.write(chunk)
                    remaining -= len(chunk)
            os.replace(tmp, dest)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
