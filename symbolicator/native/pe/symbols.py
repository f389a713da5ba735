"""What a PE image says about its own code when no PDB is at hand: exports and MinGW's DWARF.

Symbolicator falls back to the executable when no PDB is found: symbolic's PE object names
addresses from its export table, and a MinGW build (GNU ld, or clang for `*-w64-mingw32`
with `-g`) carries DWARF in `.debug_*` sections, which the same DWARF reader as ELF reads.

Both come out in the image's own address space, the virtual addresses its headers state
(`ImageBase + RVA`), the way DWARF in a PE writes them: the symcache is then keyed like an ELF
file's, and `ObjectInfo.image_vmaddr` (the ImageBase) turns a module offset into a lookup
address, exactly as for ELF. An export runs to the next export or to the end of its section,
whichever comes first (symbolic lets the last one run on forever; docs/formats.md).
"""

from __future__ import annotations

from bisect import bisect_right

from symbolicator.native.dwarf import DWARF_SECTIONS
from symbolicator.native.pe.headers import Buffer, PeImage, SectionIndex, read_exports
from symbolicator.native.symtab import Symbol


def pe_symbols(data: Buffer, pe: PeImage) -> list[Symbol]:
    """The named exports as symbols at virtual addresses, each bounded by the next one or its section's end."""
    exports = read_exports(data, pe)
    starts = [rva for rva, _ in exports]
    sections = SectionIndex(pe.sections, lambda s: s.virtual_size)
    out: list[Symbol] = []
    for i, (rva, name) in enumerate(exports):
        section = sections.at(rva)
        if section is None:
            continue  # an export outside every section points at nothing
        end = section.rva + section.virtual_size
        later = bisect_right(starts, rva, lo=i)
        if later < len(starts):
            end = min(end, starts[later])
        out.append(Symbol(pe.image_base + rva, pe.image_base + end, name))
    return out


def pe_dwarf_sections(data: Buffer, pe: PeImage) -> dict[str, bytes]:
    """The DWARF sections the reader takes (`debug_info`, …) as views of `data`; empty without DWARF."""
    view = memoryview(data)
    out: dict[str, bytes] = {}
    for s in pe.sections:
        key = s.name[1:]
        if s.name.startswith(".debug_") and key in DWARF_SECTIONS and s.file_size:
            out[key] = view[s.file_offset:s.file_offset + s.file_size]  # type: ignore[assignment]
    return out
