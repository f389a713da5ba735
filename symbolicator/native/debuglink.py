"""Finding the file that holds the debug info of a binary: split ELF debug files and dSYMs.

A distribution strips its binaries and ships the DWARF separately, found the
way gdb and llvm-symbolizer find it: by build-id
(`<root>/.build-id/ab/cdef….debug`) and by the `.gnu_debuglink` section (a
file name plus the CRC-32 of the debug file, looked for beside the binary, in
its `.debug/` folder and under the global debug roots). For Mach-O, a
`<binary>.dSYM` bundle beside the binary; for a stripped wasm module, the file its
`external_debug_info` names, beside it (`native/wasm/identify.py`). The CLI uses this; the service finds
debug files by id in its sources instead.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any, cast

from symbolicator.errors import MalformedObject

DEBUG_ROOTS = (Path("/usr/lib/debug"),)


def _elf_links(path: Path) -> tuple[bool, bytes | None, tuple[str, int] | None]:
    """(has DWARF, build-id, (debuglink name, crc)) of an ELF file, read as a stream."""
    from elftools.common.exceptions import ELFError
    from elftools.elf.elffile import ELFFile

    has_dwarf = False
    build_id = None
    link = None
    with open(path, "rb") as fh:
        try:
            elf = ELFFile(fh)
            for section in elf.iter_sections():
                name = section.name
                if name in (".debug_info", ".zdebug_info") and section["sh_type"] != "SHT_NOBITS":
                    has_dwarf = True
                elif section["sh_type"] == "SHT_NOTE":
                    for note in cast(Any, section).iter_notes():
                        if note["n_type"] == "NT_GNU_BUILD_ID":
                            build_id = bytes.fromhex(note["n_desc"])
                elif name == ".gnu_debuglink":
                    raw = section.data()
                    end = raw.find(b"\0")
                    if end > 0:
                        crc_at = (end + 4) & ~3
                        crc = int.from_bytes(raw[crc_at:crc_at + 4], "little" if elf.little_endian else "big")
                        link = (raw[:end].decode("utf-8", "replace"), crc)
        except (ELFError, ValueError, KeyError) as exc:
            raise MalformedObject(f"{path}: malformed ELF ({exc})") from exc
    return has_dwarf, build_id, link


def _crc_matches(path: Path, crc: int) -> bool:
    value = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            value = zlib.crc32(chunk, value)
    return value == crc


def find_debug_file(path: str | Path, roots: tuple[Path, ...] = DEBUG_ROOTS) -> Path:
    """The file to read debug info from: `path` itself unless a split file or dSYM is found."""
    p = Path(path)
    if p.is_dir():
        return p
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if magic == b"\0asm":
        from symbolicator.native.wasm.identify import separate_debug_file

        return separate_debug_file(p)
    if magic != b"\x7fELF":
        dsym = p.with_name(p.name + ".dSYM")
        return dsym if dsym.is_dir() else p
    has_dwarf, build_id, link = _elf_links(p)
    if has_dwarf:
        return p
    candidates: list[Path] = []
    if build_id and len(build_id) > 1:
        hexid = build_id.hex()
        for root in (p.parent, *roots):
            candidates.append(root / ".build-id" / hexid[:2] / f"{hexid[2:]}.debug")
    if link:
        name = link[0]
        candidates += [p.parent / name, p.parent / ".debug" / name]
        candidates += [root / p.parent.resolve().relative_to("/") / name for root in roots]
    for candidate in candidates:
        if candidate.is_file() and candidate.resolve() != p.resolve():
            if link and candidate.name == link[0] and not _crc_matches(candidate, link[1]):
                continue
            return candidate
    return p
