"""DWARF out of a Mach-O slice (thin, fat/universal or inside a dSYM bundle), memory-mapped.

A dSYM can be several GB, nearly all of it `__DWARF`. `macho_headers` reads the headers and
load commands with plain file reads (a few KB, every offset checked against the slice); the
file is then mapped read-only, and only the sections the DWARF decoder uses are copied out of
the mapping, exactly as the ELF path does. The accelerator tables (`__apple_*`),
`__debug_loc`, `__debug_frame`, the names of debugger stabs and any hole in a sparse file are
never touched, so they cost no memory and no I/O.

Section names are cut at 16 characters in Mach-O (`__debug_str_offs`), hence the explicit
map to the ELF-style keys the decoder expects. A fat file holds one slice per architecture:
without `arch` a thin file answers for itself, a fat one with several slices raises
`ArchitectureRequired` listing them.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

from symbolicator.errors import FormatError, MalformedObject, UnsupportedFormat
from symbolicator.native.macho_headers import MachoSlice, read_slices
from symbolicator.types import Arch

_SECTION_NAMES = {
    "__debug_info": "debug_info", "__debug_abbrev": "debug_abbrev", "__debug_line": "debug_line",
    "__debug_str": "debug_str", "__debug_line_str": "debug_line_str", "__debug_str_offs": "debug_str_offsets",
    "__debug_addr": "debug_addr", "__debug_ranges": "debug_ranges", "__debug_rnglists": "debug_rnglists",
}


class ArchitectureRequired(UnsupportedFormat):
    """A universal file holds several slices and no `arch` picked one; `arches` lists them."""

    def __init__(self, arches: list[str]) -> None:
        super().__init__(f"fat file with several architectures, pick one of: {', '.join(arches)}")
        self.arches = arches


@dataclass(frozen=True, slots=True)
class MachoImage:
    """One slice of a mapped Mach-O file.

    `data` maps the whole file (a fat file's slices share it); `slice` holds the parsed headers,
    with section and symbol-table offsets relative to `slice.offset`. The mapping closes when the
    last reference goes away.
    """

    path: Path
    data: mmap.mmap
    slice: MachoSlice


def dsym_payload(path: Path) -> Path:
    """The DWARF file inside a `.dSYM` bundle directory (the only file in Contents/Resources/DWARF)."""
    folder = path / "Contents" / "Resources" / "DWARF"
    files = sorted(p for p in folder.iterdir() if p.is_file()) if folder.is_dir() else []
    if not files:
        raise MalformedObject(f"{path}: no DWARF file in Contents/Resources/DWARF")
    return files[0]


def _pick(path: Path, slices: list[MachoSlice], arch: Arch | None) -> MachoSlice:
    if arch is None or arch == Arch.UNKNOWN:
        if len(slices) > 1:
            raise ArchitectureRequired([s.arch.value for s in slices])
        return slices[0]
    for s in slices:
        if s.arch == arch:
            return s
    raise UnsupportedFormat(f"{path}: no {arch.value} slice (has {', '.join(s.arch.value for s in slices)})")


def open_slice(path: Path, arch: Arch | None) -> tuple[MachoImage, Arch]:
    """The mapped slice of `path` for `arch`; a thin file needs no arch (but a wrong one is an error)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            slices = read_slices(f, size)
        except FormatError as exc:
            raise type(exc)(f"{path}: {exc}") from exc
        chosen = _pick(path, slices, arch)
        data = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    return MachoImage(path, data, chosen), chosen.arch


def macho_dwarf_sections(image: MachoImage) -> dict[str, bytes]:
    """The `__DWARF` sections of a slice, keyed like ELF's (`debug_info`, …), copied from the mapping."""
    sl = image.slice
    out: dict[str, bytes] = {}
    for section in sl.sections:
        if section.segname != "__DWARF":
            continue
        key = _SECTION_NAMES.get(section.sectname)
        if key is None or not section.stored:
            continue
        start = sl.offset + section.offset
        if section.offset + section.size > sl.size:
            raise MalformedObject(f"{image.path}: section {section.sectname} points past the end of the file")
        out[key] = memoryview(image.data)[start:start + section.size]  # type: ignore[assignment]
    return out
