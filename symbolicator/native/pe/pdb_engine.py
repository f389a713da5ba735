"""The PDB reader's entry point, as the PE plumbing calls it (`symbolicator.native.pdb`).

The PDB reader (MSF streams, DBI, C13 lines → symcache) is its own package; this module is
the one place the service and the CLI reach it from, by name, so that the PE code does not
import it statically: `build_symcache(path) -> bytes` has the contract of
`native/breakpad_symcache.build_symcache`, with addresses that are RVAs (a PDB does not know
the image base). Identity (GUID + age) comes from `objects.identify`, like every other file's.
"""

from __future__ import annotations

import importlib
from pathlib import Path

PDB_PACKAGE = "symbolicator.native.pdb"


def build_pdb_symcache(path: str | Path) -> bytes:
    """Symcache bytes of the PDB at `path`, addresses = RVAs; the PDB reader's typed errors pass through."""
    engine = importlib.import_module(PDB_PACKAGE)
    data = engine.build_symcache(path)
    return bytes(data)
