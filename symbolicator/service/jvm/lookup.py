"""Finding the ProGuard mappings a `/symbolicate-jvm` request names, converted once and kept open.

A module `{"uuid": …, "type": "proguard"}` is looked up in the scope's uploads through the
debug-id index the upload path writes (the UUID sentry-cli gives the mapping). The mapping is
downloaded into the downloads cache (keyed by storage key + SHA-1), converted in the worker
pool into the ProGuard cache (derived cache, keyed by content SHA-1 + `PROGUARD_CACHE_VERSION`),
and memory-mapped; concurrent requests share each step (`get_or_compute`), and an opened cache
stays in a small per-process LRU, as the native symcaches do. A file that is not a mapping
is remembered as malformed; a mapping without line information is usable by nobody, as in
Symbolicator, and reported `no_line_info`.

Errors follow Symbolicator's kinds: `missing` (nothing uploaded under the UUID, or the store
failed), `invalid`, `no_line_info`. External symbol sources are not searched for mappings.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter

from symbolicator import keys
from symbolicator.artifacts.indexes import IndexReader
from symbolicator.caching import Caches, Coalescer, conversion_output, get_or_compute
from symbolicator.caching.memo import OpenedFiles
from symbolicator.errors import FormatError, Outcome, StorageError
from symbolicator.proguard import convert
from symbolicator.proguard.cache import PROGUARD_CACHE_VERSION, ProguardCache
from symbolicator.proguard.remap import Remapper
from symbolicator.service.stored_files import ScopeIndexes, cached_download
from symbolicator.service.workers import WorkerPool
from symbolicator.storage.base import Storage
from symbolicator.types import GLOBAL_SCOPE, DebugId, ObjectKind, Scope

log = logging.getLogger(__name__)

OPEN_CACHES = 32


@dataclass(frozen=True)
class JvmDeps:
    """What JVM lookups share for the service's lifetime, the opened ProGuard caches included."""

    storage: Storage
    index_reader: IndexReader
    caches: Caches
    coalescer: Coalescer
    workers: WorkerPool
    conversions: Counter
    opened: OpenedFiles[ProguardCache] = field(default_factory=lambda: OpenedFiles(OPEN_CACHES))


def convert_mapping_file(src: str, out: str) -> None:
    """In a worker: a mapping file into a ProGuard cache file (raises `MalformedMapping`)."""
    Path(out).write_bytes(convert(Path(src).read_bytes()))


class MappingLookup:
    """One request's lookups of mappings in one scope."""

    def __init__(self, deps: JvmDeps, scope: Scope) -> None:
        self.deps = deps
        self.scope = scope
        self.indexes = ScopeIndexes(deps.index_reader, scope)

    async def open_all(self, uuids: list[DebugId]) -> tuple[list[Remapper], list[dict[str, str]]]:
        """The usable mappings in request order, and an error per unusable one."""
        results = await asyncio.gather(*(self.open(u) for u in uuids))
        remappers = [Remapper(r) for r in results if isinstance(r, ProguardCache)]
        errors = [{"uuid": str(u), "type": r} for u, r in zip(uuids, results, strict=True) if isinstance(r, str)]
        return remappers, errors

    async def source_bundles(self, uuids: list[DebugId]) -> list[Path]:
        """The downloaded JVM source bundles of these debug ids that the scope has, in request order."""
        found = await asyncio.gather(*(self._source_bundle(u) for u in uuids))
        return [p for p in found if p is not None]

    async def _source_bundle(self, debug_id: DebugId) -> Path | None:
        if self.scope == GLOBAL_SCOPE:
            return None
        try:
            index = await self.indexes.first([keys.debug_id_index(self.scope, debug_id)])
            files = [f for f in (index or {}).get("files", []) if f.get("kind") == ObjectKind.SOURCEBUNDLE.value]
            if not files:
                return None
            key = str(files[0]["key"])
            sha1 = str(files[0].get("sha1") or hashlib.sha1(key.encode()).hexdigest())
            entry = await cached_download(self.deps.storage, self.deps.caches.downloads, self.deps.coalescer,
                                          keys.cache_key("jvm-source-upload", 1, key, sha1), key)
        except (StorageError, ValueError) as exc:
            log.warning("fetching source bundle %s in %s failed: %s", debug_id, self.scope, exc)
            return None
        return None if entry.is_negative else entry.path

    async def open(self, debug_id: DebugId) -> ProguardCache | str:
        """The opened cache of the mapping, or the error kind."""
        if self.scope == GLOBAL_SCOPE:
            return "missing"
        try:
            index = await self.indexes.first([keys.debug_id_index(self.scope, debug_id)])
        except (StorageError, ValueError) as exc:
            log.warning("reading the debug-id index of %s in %s failed: %s", debug_id, self.scope, exc)
            return "missing"
        files = [f for f in (index or {}).get("files", []) if f.get("kind") == ObjectKind.PROGUARD.value]
        if not files:
            return "missing"
        entry = files[0]
        key = str(entry["key"])
        sha1 = str(entry.get("sha1") or hashlib.sha1(key.encode()).hexdigest())
        try:
            cache = await self._converted(key, sha1)
        except StorageError as exc:
            log.warning("fetching mapping %s failed: %s", key, exc)
            return "missing"
        except Exception:
            # A bug on one mapping must not fail the request: Symbolicator answers `missing` for
            # every error that is not about the file itself.
            log.exception("opening mapping %s failed", key)
            return "missing"
        if isinstance(cache, str):
            return cache
        return cache if cache.has_line_info else "no_line_info"

    async def _converted(self, key: str, sha1: str) -> ProguardCache | str:
        deps = self.deps
        derived = deps.caches.derived
        cache_key = keys.cache_key("proguard", PROGUARD_CACHE_VERSION, sha1)
        opened = await deps.opened.get(derived, cache_key)
        if opened is not None:
            return opened

        async def compute() -> Path | Outcome:
            downloaded = await cached_download(deps.storage, deps.caches.downloads, deps.coalescer,
                                               keys.cache_key("jvm-upload", 1, key, sha1), key)
            if downloaded.is_negative or downloaded.path is None:
                return downloaded.outcome or Outcome.NOT_FOUND
            async with conversion_output(derived, ".pgcache") as out:
                await deps.workers.run(convert_mapping_file, str(downloaded.path), str(out))
                deps.conversions.inc()
            return out

        for _ in range(2):
            try:
                entry = await get_or_compute(derived, deps.coalescer, cache_key, compute)
            except FormatError:
                return "invalid"
            except FileNotFoundError:
                continue  # the download was evicted before the worker read it
            if entry.is_negative or entry.path is None:
                return "invalid" if entry.outcome in (Outcome.MALFORMED, Outcome.UNSUPPORTED) else "missing"
            try:
                cache = await asyncio.to_thread(ProguardCache.open, entry.path)
            except (FileNotFoundError, FormatError) as exc:
                log.info("ProGuard cache %s unusable (%s); rebuilding", cache_key, exc)
                await asyncio.to_thread(derived.delete, cache_key)
                continue
            return deps.opened.put(cache_key, cache, size=entry.path.stat().st_size, path=entry.path)
        return "missing"
