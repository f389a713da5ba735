"""Finding and converting a module's unwind information into a CFI cache, once.

The same search as the symcache's (`ModuleResolver`: the scope's uploads through the debug-id
index, then the external sources; uploads shared through the downloads cache, so a module
whose symcache was built is not downloaded again; on external sources the file with unwind
information is chosen, `purpose = "unwind"`), with another conversion at its end: the
file becomes a CFI cache (`native/cfi/`) in the derived cache, keyed by content SHA-1, arch
(the slice of a universal Mach-O) and `CFICACHE_VERSION`, built in the worker pool, coalesced
per key, a broken file remembered as malformed.

A file without unwind rows (a split debug file whose `.eh_frame` is NOBITS and that has no
`.debug_frame`) does not end the search: the next stored file of the module (its executable)
is tried, which is how a walk goes through a module by its `.eh_frame` when no debug file
carries CFI. A PDB is such a file too (a PE image keeps its unwind tables), but its cache holds
the code map of its symbols, which the walk's stack scanning asks (`code_path`).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symbolicator import keys
from symbolicator.caching import CacheEntry, conversion_output, get_or_compute
from symbolicator.errors import (
    FormatError,
    ObjectFileStatus,
    Outcome,
    SymbolicatorError,
)
from symbolicator.native.cfi.cache import CFICACHE_VERSION
from symbolicator.service.native.modules import ModuleResolver, NativeDeps, ResolvedModule

log = logging.getLogger(__name__)
KNOWN_CFI_CACHES = 4096


class KnownCfiCaches:
    """Converted CFI caches one service has seen, by key: their path and row count (the oldest go
    past `KNOWN_CFI_CACHES`). A key names content (SHA-1 + version), so an entry never goes stale;
    an evicted file fails the `exists()` check and is looked up again. `NativeService` owns one,
    beside the derived cache it describes."""

    def __init__(self, max_items: int = KNOWN_CFI_CACHES) -> None:
        self.max_items = max_items
        self._known: dict[str, tuple[Path, int, bool]] = {}

    def get(self, key: str) -> tuple[Path, int, bool] | None:
        return self._known.get(key)

    def put(self, key: str, path: Path, rows: int, code_map: bool = False) -> None:
        self._known[key] = (path, rows, code_map)
        while len(self._known) > self.max_items:
            del self._known[next(iter(self._known))]


@dataclass
class ResolvedUnwind(ResolvedModule):
    """A module's unwind lookup: `cfi_path` is its CFI cache when `status` is FOUND; `code_path` a
    cache with the code map of its symbols (a PE module's PDB), when one was met on the way."""

    cfi_path: Path | None = None
    code_path: Path | None = None


def convert_cfi(src: str, out: str, arch: str | None = None) -> dict[str, Any]:
    """Worker-process entry: the CFI cache of `src` (its `arch` slice, for a universal Mach-O)
    into `out`; returns its meta."""
    from symbolicator.native.cfi.build import build
    from symbolicator.types import Arch

    data, meta = build(Path(src), Arch.parse(arch) if arch else None)
    Path(out).write_bytes(data)
    return meta


class CfiLookup(ModuleResolver):
    """`resolve` answers a `ResolvedUnwind`; only the conversion differs from the symcache's."""

    result_type = ResolvedUnwind
    purpose = "unwind"

    def __init__(self, deps: NativeDeps, known: KnownCfiCaches) -> None:
        super().__init__(deps)
        self.cfi_conversions = deps.metrics.cfi_conversions
        self.known = known

    async def _convert_and_open(self, sha1: str, arch: str | None, fetch: Callable[[], Awaitable[CacheEntry]],
                                candidate: dict[str, Any], result: ResolvedModule) -> bool:
        key = keys.cache_key("cficache", CFICACHE_VERSION, sha1, arch or "any")
        meta_key = keys.cache_key("cficache-meta", CFICACHE_VERSION, sha1, arch or "any")
        derived = self.caches.derived
        known = self.known.get(key)
        if known is not None and known[0].exists():  # warm: one stat, no cache-database round trip
            return self._found_cfi(result, candidate, *known)

        async def convert() -> Path | Outcome:
            downloaded = await fetch()
            if downloaded.is_negative:
                return downloaded.outcome or Outcome.NOT_FOUND
            assert downloaded.path is not None
            async with conversion_output(derived, ".cficache") as out:
                meta = await self.workers.run(convert_cfi, str(downloaded.path), str(out), arch)
                self.cfi_conversions.inc()
                await asyncio.to_thread(derived.put_bytes, meta_key, json.dumps(meta).encode())
            return out

        for _ in range(2):
            try:
                entry = await get_or_compute(derived, self.coalescer, key, convert)
            except FileNotFoundError:
                continue  # the download was evicted before the worker opened it
            except FormatError as exc:
                return self._unwind_failed(result, candidate, ObjectFileStatus.MALFORMED, str(exc))
            except SymbolicatorError as exc:
                log.warning("converting the CFI of %s failed: %s", sha1, exc)
                return self._unwind_failed(result, candidate, ObjectFileStatus.OTHER, str(exc))
            if entry.is_negative or entry.path is None:
                status = ObjectFileStatus.MISSING if entry.outcome == Outcome.NOT_FOUND else ObjectFileStatus.MALFORMED
                return self._unwind_failed(result, candidate, status, None)
            meta_entry = await asyncio.to_thread(derived.get, meta_key)
            meta = json.loads(meta_entry.path.read_bytes()) if meta_entry and meta_entry.path else {"rows": 1}
            rows, code_map = meta.get("rows", 0), bool(meta.get("code_map"))
            self.known.put(key, entry.path, rows, code_map)
            return self._found_cfi(result, candidate, entry.path, rows, code_map)
        return self._unwind_failed(result, candidate, ObjectFileStatus.OTHER, "the CFI cache could not be opened")

    @staticmethod
    def _found_cfi(result: ResolvedModule, candidate: dict[str, Any], path: Path, rows: int,
                   code_map: bool = False) -> bool:
        candidate.setdefault("download", {"status": "ok"})
        candidate["unwind"] = {"status": "ok"}
        assert isinstance(result, ResolvedUnwind)
        if code_map and result.code_path is None:
            result.code_path = path
        if not rows:
            return False  # no unwind rows in this file: try the module's next one
        result.status, result.cfi_path = ObjectFileStatus.FOUND, path
        result.features = dict(result.features, has_unwind_info=True)
        return True

    @staticmethod
    def _unwind_failed(result: ResolvedModule, candidate: dict[str, Any], status: ObjectFileStatus,
                       details: str | None) -> bool:
        candidate.setdefault("download", {"status": "ok"})
        candidate["unwind"] = {"status": "malformed" if status == ObjectFileStatus.MALFORMED else "error",
                               **({"details": details} if details else {})}
        if result.status in (ObjectFileStatus.MISSING, ObjectFileStatus.OTHER) or status == ObjectFileStatus.MALFORMED:
            result.status = status
        return False
