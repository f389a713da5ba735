"""DWARF and symbols out of a Mach-O slice (thin, fat/universal or inside a dSYM bundle), via lief.

lief parses the load commands; we pick the slice by architecture and copy the
sections of the `__DWARF` segment into the same dict the ELF path produces, so
the DWARF decoder never knows the container. Section names are cut at 16
characters in Mach-O (`__debug_str_offs`), hence the explicit map. lief
reports broken load commands by logging and returning `None` or partial
objects; every such case becomes `MalformedObject` here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lief

from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.types import Arch

lief.logging.disable()

_SECTION_NAMES = {
    "__debug_info": "debug_info", "__debug_abbrev": "debug_abbrev", "__debug_line": "debug_line",
    "__debug_str": "debug_str", "__debug_line_str": "debug_line_str", "__debug_str_offs": "debug_str_offsets",
    "__debug_addr": "debug_addr", "__debug_ranges": "debug_ranges", "__debug_rnglists": "debug_rnglists",
}
_MAX_SLICES = 64


class ArchitectureRequired(UnsupportedFormat):
    """A universal file holds several slices and no `arch` picked one; `arches` lists them."""

    def __init__(self, arches: list[str]) -> None:
        super().__init__(f"fat file with several architectures, pick one of: {', '.join(arches)}")
        self.arches = arches


def macho_arch(binary: Any) -> Arch:
    """Symbolicator's arch name of a lief Mach-O slice (subtype decides arm64e / x86_64h / armv7)."""
    header = binary.header
    cpu = str(header.cpu_type).rsplit(".", 1)[-1]
    sub = int(header.cpu_subtype) & 0x00FFFFFF
    if cpu == "ARM64":
        return Arch.ARM64E if sub == 2 else Arch.ARM64
    if cpu == "ARM64_32":
        return Arch.ARM64_32
    if cpu == "X86_64":
        return Arch.X86_64H if sub == 8 else Arch.X86_64
    if cpu in ("X86", "I386"):
        return Arch.X86
    if cpu == "ARM":
        return Arch.ARMV7 if sub == 9 else Arch.ARM
    if cpu == "POWERPC":
        return Arch.PPC
    if cpu == "POWERPC64":
        return Arch.PPC64
    return Arch.UNKNOWN


def dsym_payload(path: Path) -> Path:
    """The DWARF file inside a `.dSYM` bundle directory (the only file in Contents/Resources/DWARF)."""
    folder = path / "Contents" / "Resources" / "DWARF"
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if not files:
        raise MalformedObject(f"{path}: no DWARF file in Contents/Resources/DWARF")
    return files[0]


def open_slice(path: Path, arch: Arch | None) -> tuple[Any, Arch]:
    """The lief slice of `path` for `arch`; a thin file needs no arch (but a wrong one is an error)."""
    try:
        fat = lief.MachO.parse(str(path))
    except Exception as exc:  # lief raises its own types on some inputs
        raise MalformedObject(f"{path}: cannot parse Mach-O ({exc})") from exc
    if fat is None or fat.size == 0:
        raise MalformedObject(f"{path}: cannot parse Mach-O load commands")
    if fat.size > _MAX_SLICES:
        raise MalformedObject(f"{path}: fat header claims {fat.size} slices")
    slices = [(fat.at(i), macho_arch(fat.at(i))) for i in range(fat.size)]
    if any(b is None for b, _ in slices):
        raise MalformedObject(f"{path}: broken fat slice")
    if arch is None or arch == Arch.UNKNOWN:
        if len(slices) > 1:
            raise ArchitectureRequired([a.value for _, a in slices])
        return slices[0]
    for binary, a in slices:
        if a == arch:
            return binary, a
    raise UnsupportedFormat(f"{path}: no {arch.value} slice (has {', '.join(a.value for _, a in slices)})")


def macho_dwarf_sections(binary: Any) -> dict[str, bytes]:
    """The `__DWARF` sections of a slice, keyed like ELF's (`debug_info`, …)."""
    out: dict[str, bytes] = {}
    for section in binary.sections:
        if section.segment_name != "__DWARF":
            continue
        key = _SECTION_NAMES.get(section.name)
        if key is None:
            continue
        content = bytes(section.content)
        if len(content) != section.size:
            raise MalformedObject(f"section {section.name} points past the end of the file")
        out[key] = content
    return out


def text_vmaddr(binary: Any) -> int:
    """The `__TEXT` segment's stated address (`image_vmaddr` of API.md §0)."""
    for segment in binary.segments:
        if segment.name == "__TEXT":
            return int(segment.virtual_address)
    return 0
