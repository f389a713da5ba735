"""PE/COFF images (Windows `.exe` / `.dll`): identification and their own symbols.

`headers.read_pe` reads what identifies an image (code id, the CodeView record naming its PDB,
arch, image base) and the section table; `symbols.build_symcache` turns what the image itself
holds (its exports and, for MinGW builds, DWARF) into a symcache for when no PDB is there.
The PDB reader is `symbolicator.native.pdb`. docs/formats.md, "PE + PDB", has the details.
"""

from symbolicator.native.pe.headers import CodeView, PeImage, Section, read_exports, read_pe

__all__ = ["CodeView", "PeImage", "Section", "read_exports", "read_pe"]
