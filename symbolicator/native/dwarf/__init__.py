"""DWARF debug information → line rows, function ranges and the inline tree for the symcache.

* `reader.py`: the sections of an ELF object (decompressed, capped) and `read_dwarf`, which
  decodes them into the columnar runs the symcache writer sorts;
* `macho.py`: the same sections from a Mach-O slice or a dSYM bundle;
* `forms.py`, `lines.py`, `ranges.py`, `units.py`: attribute forms and string tables, line
  programs, range lists, and the DIE walk.

The container-independent names are importable from the package.
"""

from symbolicator.native.dwarf.macho import (
    ArchitectureRequired,
    MachoImage,
    dsym_payload,
    macho_dwarf_sections,
    open_slice,
)
from symbolicator.native.dwarf.reader import (
    DWARF_SECTIONS,
    LINE_DTYPE,
    MAX_SECTION_BYTES,
    STEP_DTYPE,
    DwarfData,
    InflateToFile,
    elf_dwarf_sections,
    read_dwarf,
    unit_steps,
)

__all__ = [
    "DWARF_SECTIONS", "LINE_DTYPE", "MAX_SECTION_BYTES", "STEP_DTYPE", "ArchitectureRequired", "DwarfData",
    "InflateToFile", "MachoImage", "dsym_payload", "elf_dwarf_sections", "macho_dwarf_sections", "open_slice",
    "read_dwarf", "unit_steps",
]
