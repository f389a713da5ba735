"""Finding an exe's PDB on disk for offline use, and refusing one that belongs to another build.

llvm-symbolizer looks for the PDB at the path in the exe's CodeView record, then beside the exe,
and uses whatever it finds there: a PDB from another build gives wrong answers silently
(llvm-symbolizer 14 does not compare the GUID and age). This module looks in the same places
but takes a PDB only when `objects.identify` reads a debug id from it that serves the exe's
(`DebugId.serves`: same GUID, age at least the exe's); anything else is refused with the reason,
and the caller falls back to what the exe itself knows (exports, MinGW DWARF), as Symbolicator
falls back from a missing PDB to the PE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from symbolicator.errors import FormatError
from symbolicator.native.objects import ObjectInfo, identify


@dataclass(frozen=True, slots=True)
class PdbChoice:
    """The PDB to read (`path`, None when none fits) and why each other file found was not taken."""

    path: Path | None
    info: ObjectInfo | None = None
    refused: list[str] = field(default_factory=list)


def pdb_candidates(exe: Path, info: ObjectInfo) -> list[Path]:
    """Where llvm-symbolizer looks: the CodeView path as written (when it is a path here), then beside the exe."""
    recorded = info.debug_link
    out: list[Path] = []
    if recorded and "\\" not in recorded and "/" in recorded:
        out.append(Path(recorded))
    name = recorded.replace("\\", "/").rsplit("/", 1)[-1] if recorded else ""
    if name not in ("", ".", ".."):
        out.append(exe.parent / name)
    return out


def find_pdb(exe: Path, info: ObjectInfo) -> PdbChoice:
    """The PDB of the exe described by `info` (`file_format == "pe"`), checked by GUID and age."""
    refused: list[str] = []
    for candidate in pdb_candidates(exe, info):
        if not candidate.is_file():
            continue
        try:
            found = identify(candidate)
        except (FormatError, OSError) as exc:
            refused.append(f"{candidate}: not readable as a PDB ({exc})")
            continue
        pdb = next((o for o in found if o.file_format == "pdb"), None)
        if pdb is None or pdb.debug_id is None:
            refused.append(f"{candidate}: not a PDB")
        elif info.debug_id is None or not pdb.debug_id.serves(info.debug_id):
            refused.append(f"{candidate}: its GUID/age {pdb.debug_id} is another build's "
                           f"(the exe wants {info.debug_id})")
        else:
            return PdbChoice(candidate, pdb, refused)
    return PdbChoice(None, None, refused)
