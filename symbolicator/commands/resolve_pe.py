"""`symbolicator resolve --debug-file app.exe|app.pdb`: which file answers, and in which address space.

An exe's answers come from its PDB when one that belongs to it is found (the CodeView path, then
beside the exe: `native/pe/pairing.py`); a PDB of another build is refused with a warning on
stderr, and the exe's own exports and MinGW DWARF answer instead. llvm-symbolizer uses such a PDB
silently.

Addresses (docs/formats.md, "PE + PDB"): with an exe, an address at or above its ImageBase is a
virtual address as llvm-symbolizer takes it (`0x140001058`), anything lower an RVA (`0x1058`),
so both forms a Windows stack trace shows work. A PDB alone does not know the ImageBase: its
addresses are RVAs (llvm-symbolizer refuses a PDB as `--obj`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from symbolicator.commands import offline_cache
from symbolicator.errors import UnsupportedFormat

if TYPE_CHECKING:
    from symbolicator.native.objects import ObjectInfo
    from symbolicator.native.symcache import SymCache

Rebase = Callable[[int], int]


def is_pe_or_pdb(info: ObjectInfo) -> bool:
    return info.file_format in ("pe", "pdb")


def load(path: Path, info: ObjectInfo, cache: offline_cache.OfflineCache | None,
         err: TextIO = sys.stderr) -> tuple[SymCache, Rebase]:
    """The symcache that answers for the exe or PDB at `path`, and how an input address becomes its address."""
    from symbolicator.native.pe.pairing import find_pdb

    if info.file_format == "pdb":
        return _pdb_symcache(path, cache), _same
    choice = find_pdb(path, info)
    for reason in choice.refused:
        print(f"symbolicator resolve: warning: PDB refused: {reason}", file=err)
    base = info.image_vmaddr
    if choice.path is not None:
        return _pdb_symcache(choice.path, cache), lambda a: a - base if a >= base else a
    try:
        return _exe_symcache(path, cache), lambda a: a if a >= base else a + base
    except UnsupportedFormat as exc:
        raise UnsupportedFormat(f"{exc}; and no PDB of this build was found ({info.debug_link or 'none named'})"
                                ) from exc


def _same(address: int) -> int:
    return address


def _pdb_symcache(path: Path, cache: offline_cache.OfflineCache | None) -> SymCache:
    from symbolicator.native.pdb import build_symcache as build_pdb_symcache

    return _cached(path, "pdb", lambda: build_pdb_symcache(path), cache)


def _exe_symcache(path: Path, cache: offline_cache.OfflineCache | None) -> SymCache:
    from symbolicator.native.symcache_build import build

    return _cached(path, "pe", lambda: build(path), cache)


def _cached(path: Path, kind: str, make: Callable[[], bytes], cache: offline_cache.OfflineCache | None) -> SymCache:
    from symbolicator.native.symcache import SYMCACHE_VERSION, SymCache

    if cache is None:
        return SymCache.from_bytes(make())
    made = cache.converted("cli-symcache", SYMCACHE_VERSION, offline_cache.identity([path, None], kind), make)
    return SymCache.open(made) if isinstance(made, Path) else SymCache.from_bytes(bytes(made))
