"""A PDB's identity: the GUID and age that make Sentry's debug id, the architecture, the features.

Sentry (symbolic) builds the debug id from the PDB info stream's GUID and the DBI stream's age,
which is the age the linker wrote into the executable's CodeView record; the info stream's own
age counts later edits of the PDB (`pdbcopy`, incremental links) and is used only when there is
no DBI stream. Checked on the fixtures against symbolic's `debug_id` and `llvm-pdbutil dump
--summary`. Reading it costs the superblock, the directory and two stream headers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from symbolicator.errors import MalformedObject
from symbolicator.native.pdb.msf import opened_msf
from symbolicator.native.pdb.streams import DBI_STREAM, read_dbi, read_info
from symbolicator.types import Arch


@dataclass(frozen=True, slots=True)
class PdbIdentity:
    """GUID and age (Sentry's debug id is `guid-age`), arch from the DBI machine, and what it holds."""

    guid: uuid.UUID
    age: int
    arch: Arch
    has_debug_info: bool
    has_symbols: bool


def read_identity(path: str | Path) -> PdbIdentity:
    """The identity of the PDB at `path`; `MalformedObject` when it is not a readable PDB."""
    with opened_msf(path) as msf:
        info = read_info(msf)
        if msf.stream(DBI_STREAM) is None:
            return PdbIdentity(info.guid, info.age, Arch.UNKNOWN, False, False)
        dbi = read_dbi(msf)
        has_debug = any(m.sym_bytes > 4 or m.c13_bytes for m in dbi.modules)
        publics = msf.stream(dbi.publics)
        return PdbIdentity(info.guid, dbi.age or info.age, dbi.arch, has_debug,
                           publics is not None and publics.size > 0)


def identity(path: str | Path) -> tuple[uuid.UUID, int]:
    """(GUID, age) as Sentry's debug id uses them."""
    found = read_identity(path)
    if found.age == 0 and found.guid.int == 0:
        raise MalformedObject(f"{path}: a PDB without a GUID")
    return found.guid, found.age
