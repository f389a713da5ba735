"""Finding, fetching and converting the debug file of one module, once.

A native request names modules by debug id. For each module a frame points
into, `ModuleResolver.resolve` answers a `ResolvedModule`: an open symcache plus
what the response says about the module (`debug_status`, `features`, `arch`,
`candidates`). The order of places looked at is docs/api.md's: the scope's own
uploads (through the debug-id index the upload path writes), then external
sources.

The expensive steps are cached and coalesced per key, so N concurrent requests
needing one module cause one download and one conversion:

* downloads cache, keyed by storage key + content SHA-1: the debug file itself;
* derived cache, keyed by content SHA-1 + `SYMCACHE_VERSION` + arch: the
  symcache, built in the worker pool, and beside it a small JSON "meta" entry
  (arch, `image_vmaddr`, features) that the address arithmetic needs;
* a file that cannot be converted is remembered as `malformed` for 24 h, a
  download that is gone as `not_found` for 1 h (`get_or_compute` does both).

The index itself is checked on every request (from memory while the store
vouches that it is unchanged, `IndexReader`: one stat of it on local storage,
one read of the scope's generation marker per request on S3), so an upload is
seen at once, with no negative entry to clear. What it points to never changes
meaning (content SHA-1 + version), so an opened symcache and its meta stay in a
small LRU the service owns (`NativeService`): on local storage a warm module costs one stat of its
index and nothing else (no thread, no cache-database transaction, no file open,
and the names the symcache decoded stay decoded).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from symbolicator import keys
from symbolicator.caching import CacheEntry, conversion_output, get_or_compute
from symbolicator.caching.memo import OpenedFiles
from symbolicator.config import Settings
from symbolicator.errors import (
    FormatError,
    ObjectFileStatus,
    Outcome,
    StorageError,
    SymbolicatorError,
    UnsupportedFormat,
)
from symbolicator.metrics import Metrics
from symbolicator.native import objects
from symbolicator.native.dwarf import MAX_SECTION_BYTES
from symbolicator.native.spill import DEFAULT_MEMORY_BYTES
from symbolicator.native.symcache import SYMCACHE_VERSION, SymCache
from symbolicator.service.parts import ServiceParts
from symbolicator.service.stored_files import ScopeIndexes, cached_download
from symbolicator.sources import FilesystemSource, ModuleQuery, SourcePlan, fingerprint, plan_sources
from symbolicator.sources.download import S3Clients
from symbolicator.sources.search import Purpose, find_debug_file
from symbolicator.types import GLOBAL_SCOPE, Arch, CodeId, DebugId, Scope

log = logging.getLogger(__name__)

UPLOADS_SOURCE = "uploads"
SUPPORTED_TYPES = frozenset({"elf", "macho", "pe", "wasm", "unknown"})
NO_FEATURES = {"has_debug_info": False, "has_unwind_info": False, "has_symbols": False, "has_sources": False}
_KIND_ORDER = {"debuginfo": 0, "executable": 1, "breakpad": 2}
_OUTCOME_STATUS = {
    Outcome.NOT_FOUND: ObjectFileStatus.MISSING,
    Outcome.MALFORMED: ObjectFileStatus.MALFORMED,
    Outcome.UNSUPPORTED: ObjectFileStatus.UNSUPPORTED,
    Outcome.FETCH_FAILED: ObjectFileStatus.FETCHING_FAILED,
    Outcome.TIMEOUT: ObjectFileStatus.TIMEOUT,
}
OPEN_SYMCACHES = 64
OPEN_SYMCACHE_BYTES = 2 << 30  # mapped, not resident: the page cache decides what stays in memory


@dataclass
class ResolvedModule:
    """What one module lookup found. `image_vmaddr` is the debug file's stated
    load address (docs/api.md); `symcache` is open when `status` is FOUND.
    A `shared` symcache belongs to the service's LRU: `close` leaves it open."""

    status: ObjectFileStatus
    symcache: SymCache | None = None
    image_vmaddr: int = 0
    arch: Arch = Arch.UNKNOWN
    features: dict[str, bool] = field(default_factory=lambda: dict(NO_FEATURES))
    candidates: list[dict[str, Any]] = field(default_factory=list)
    shared: bool = False

    def close(self) -> None:
        if self.symcache is not None and not self.shared:
            self.symcache.close()
        self.symcache = None


@dataclass(frozen=True)
class OpenedSymcache:
    """A symcache opened once for the service, with the meta its address arithmetic needs."""

    symcache: SymCache
    image_vmaddr: int
    arch: Arch
    features: dict[str, bool]
    size: int


SymcacheMemo = OpenedFiles[OpenedSymcache]


def symcache_memo() -> SymcacheMemo:
    """The opened symcaches of one service (`NativeService` owns it; every request's resolver shares it)."""
    return OpenedFiles(OPEN_SYMCACHES, OPEN_SYMCACHE_BYTES)


def features_json(info: objects.ObjectInfo) -> dict[str, bool]:
    f = info.features
    return {"has_debug_info": f.has_debug_info, "has_unwind_info": f.has_unwind_info,
            "has_symbols": f.has_symbols, "has_sources": f.has_sources}


def convert_debug_file(src: str, out: str, arch: str | None,
                       max_section_bytes: int = MAX_SECTION_BYTES, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                       spill_dir: str | None = None) -> dict[str, Any]:
    """Worker-process entry: identify `src`, build its symcache into `out`, return the meta.

    Top level and plain arguments, so it pickles into the process pool. `memory_bytes` and
    `spill_dir`: the conversion's memory budget and where its unnamed spill files go.
    """
    from symbolicator.native import symcache_build

    infos = objects.identify(Path(src))
    wanted = Arch.parse(arch) if arch else None
    info = next((i for i in infos if wanted is None or i.arch == wanted), None)
    if info is None:
        raise UnsupportedFormat(f"the file holds no {arch} object")
    if info.file_format == "breakpad":
        from symbolicator.native.breakpad_symcache import build_symcache

        Path(out).write_bytes(build_symcache(src))
        return {"arch": info.arch.value, "image_vmaddr": 0, "features": features_json(info), "file_format": "breakpad"}
    if info.file_format == "pdb":  # addresses are RVAs: image_vmaddr 0, as for Breakpad files
        from symbolicator.native.pdb import build_symcache as build_pdb_symcache

        Path(out).write_bytes(build_pdb_symcache(src, memory_bytes, spill_dir))
        return {"arch": info.arch.value, "image_vmaddr": 0, "features": features_json(info), "file_format": "pdb"}
    with open(out, "wb") as fh:
        symcache_build.build_into(fh, src, info.arch if len(infos) > 1 else None, max_section_bytes=max_section_bytes,
                                  memory_bytes=memory_bytes, spill_dir=spill_dir)
    return {"arch": info.arch.value, "image_vmaddr": info.image_vmaddr, "features": features_json(info),
            "file_format": info.file_format}


@dataclass(frozen=True)
class NativeDeps(ServiceParts):
    """What native lookups share for the service's lifetime (`NativeService` holds one): its parts,
    and the memos that outlive a request (opened symcaches, S3 clients of symbol sources)."""

    metrics: Metrics
    symcaches: SymcacheMemo = field(default_factory=symcache_memo)
    s3_clients: S3Clients = field(default_factory=S3Clients)


class ModuleResolver:
    """Module lookup for one request: what it shares is the service's (`NativeDeps`), the scope's
    index readers are its own (`NativeService.resolver` makes one per request)."""

    result_type: type[ResolvedModule] = ResolvedModule  # the CFI lookup (service/minidump_cfi.py) extends it
    purpose: Purpose = "debug"  # which file of an external source serves best (sources/native.py)

    def __init__(self, deps: NativeDeps) -> None:
        self.deps = deps
        self.settings = deps.settings
        self.storage = deps.storage
        self._indexes: dict[Scope, ScopeIndexes] = {}
        self.caches = deps.caches
        self.coalescer = deps.coalescer
        self.workers = deps.workers
        self.fetcher = deps.fetcher
        self.conversions = deps.metrics.native_conversions
        self.downloads = deps.metrics.native_downloads

    async def resolve(self, scope: Scope, debug_id: DebugId | None, code_id: CodeId | None, module_type: str,
                      code_file: str | None, debug_file: str | None,
                      sources: RequestSources) -> ResolvedModule:
        """The module's symcache, or the status explaining why there is none."""
        result = self.result_type(ObjectFileStatus.MISSING)
        if module_type not in SUPPORTED_TYPES:
            result.status = ObjectFileStatus.UNSUPPORTED
            return result
        if debug_id is None:
            return result
        source_id = sources.uploads_source_id
        index: dict[str, Any] | None = None
        if scope != GLOBAL_SCOPE:
            try:
                scope_indexes = self._indexes.get(scope)
                if scope_indexes is None:
                    scope_indexes = self._indexes[scope] = ScopeIndexes(self.deps.index_reader, scope)
                index = await scope_indexes.first([keys.debug_id_index(scope, debug_id)])
            except (StorageError, ValueError) as exc:
                log.warning("reading the debug-id index of %s in %s failed: %s", debug_id, scope, exc)
                result.status = ObjectFileStatus.FETCHING_FAILED
                result.candidates.append({"source": source_id, "location": f"sentry://project_debug_file/{debug_id}",
                                          "download": {"status": "error", "details": str(exc)}})
        files = sorted((f for f in (index or {}).get("files", []) if f.get("kind") in _KIND_ORDER),
                       key=lambda f: _KIND_ORDER[f["kind"]])
        for entry in files:
            if await self._from_upload(entry, source_id, result):
                result.candidates.extend(sources.skipped_candidates())
                return result
        if not files and result.status == ObjectFileStatus.MISSING:
            result.candidates.append({"source": source_id, "location": sources.not_found_message,
                                      "download": {"status": "notfound"}})
        if module_type in ("elf", "macho", "pe", "wasm") and (sources.plan.sources or sources.plan.skipped):
            wanted = ModuleQuery(module_type, debug_id, code_id, Arch.UNKNOWN, code_file, debug_file)  # type: ignore[arg-type]
            await self._from_sources(wanted, sources, result)
        return result

    async def _from_upload(self, entry: dict[str, Any], source_id: str, result: ResolvedModule) -> bool:
        """Try one stored file of the index; record its candidate; True when it answered."""
        key = str(entry["key"])
        sha1 = str(entry.get("sha1") or hashlib.sha1(key.encode()).hexdigest())
        arch = entry.get("arch") if entry.get("arch") not in (None, "unknown") else None
        candidate: dict[str, Any] = {"source": source_id, "location": f"sentry://project_debug_file/{key}"}
        result.candidates.append(candidate)

        dl_key = keys.cache_key("native-upload", 1, key, sha1)
        return await self._convert_and_open(sha1, arch, lambda: cached_download(
            self.storage, self.caches.downloads, self.coalescer, dl_key, key, self.downloads.inc), candidate, result)

    async def _convert_and_open(self, sha1: str, arch: str | None, fetch: Callable[[], Awaitable[CacheEntry]],
                                candidate: dict[str, Any], result: ResolvedModule) -> bool:
        """Symcache of the file `fetch` provides (cached by content), opened into `result`."""
        sc_key = keys.cache_key("symcache", SYMCACHE_VERSION, sha1, arch or "any")
        meta_key = keys.cache_key("symcache-meta", SYMCACHE_VERSION, sha1, arch or "any")
        derived = self.caches.derived
        opened = await self.deps.symcaches.get(derived, sc_key, companions=(meta_key,))
        if opened is not None:
            return self._found(result, candidate, opened)

        async def convert() -> Path | Outcome:
            shared = self.caches.shared
            found = await shared.fetch(sc_key, derived) if shared is not None else None
            if found is not None and isinstance(found[1].get("meta"), dict):  # converted by another instance
                await asyncio.to_thread(derived.put_bytes, meta_key, json.dumps(found[1]["meta"]).encode())
                return found[0]
            if found is not None:
                found[0].unlink(missing_ok=True)
            downloaded = await fetch()
            if downloaded.is_negative:
                return downloaded.outcome or Outcome.NOT_FOUND
            assert downloaded.path is not None
            async with conversion_output(derived, ".symcache") as out:
                limits = self.settings.limits
                meta = await self.workers.run(convert_debug_file, str(downloaded.path), str(out), arch,
                                              limits.max_decompressed_section_bytes, limits.conversion_memory_bytes,
                                              str(derived.temp_dir))
                self.conversions.inc()
                await asyncio.to_thread(derived.put_bytes, meta_key, json.dumps(meta).encode())
                if shared is not None:
                    await shared.publish(sc_key, out, {"meta": meta}, derived)
            return out

        for _ in range(2):
            try:
                entry = await get_or_compute(derived, self.coalescer, sc_key, convert)
            except FormatError as exc:
                return self._failed(result, candidate, _format_outcome(exc), str(exc))
            except FileNotFoundError:
                continue  # the download was evicted before the worker opened it
            except SymbolicatorError as exc:
                log.warning("converting %s failed: %s", sha1, exc)
                return self._failed(result, candidate, None, str(exc))
            except Exception:
                # A bug on one module must not fail the request: its frames say `missing`, it says `other`.
                log.exception("converting %s failed", sha1)
                return self._failed(result, candidate, None, "internal error while converting")
            if entry.is_negative:
                return self._failed(result, candidate, entry.outcome, None)
            try:
                opened = await asyncio.to_thread(self._open, meta_key, entry)
            except (FileNotFoundError, ValueError, KeyError, FormatError) as exc:
                log.info("symcache %s unusable (%s); rebuilding", sc_key, exc)
                await asyncio.to_thread(derived.delete, sc_key)
                continue
            kept = self.deps.symcaches.put(sc_key, opened, size=opened.size, path=entry.path)
            return self._found(result, candidate, kept)
        return self._failed(result, candidate, None, "the converted file could not be opened")

    def _open(self, meta_key: str, entry: CacheEntry) -> OpenedSymcache:
        meta_entry = self.caches.derived.get(meta_key)
        if meta_entry is None or meta_entry.path is None:
            raise FileNotFoundError(meta_key)
        meta = json.loads(meta_entry.path.read_bytes())
        assert entry.path is not None
        return OpenedSymcache(SymCache.open(entry.path), int(meta["image_vmaddr"]), Arch.parse(meta["arch"]),
                       dict(meta["features"]), entry.path.stat().st_size)

    @staticmethod
    def _found(result: ResolvedModule, candidate: dict[str, Any], opened: OpenedSymcache) -> bool:
        result.status = ObjectFileStatus.FOUND
        result.symcache, result.shared = opened.symcache, True
        result.image_vmaddr, result.arch, result.features = opened.image_vmaddr, opened.arch, dict(opened.features)
        candidate["download"] = {"status": "ok", "features": dict(result.features)}
        candidate["debug"] = {"status": "ok"}
        return True

    @staticmethod
    def _failed(result: ResolvedModule, candidate: dict[str, Any], outcome: Outcome | None,
                details: str | None) -> bool:
        status = _OUTCOME_STATUS.get(outcome, ObjectFileStatus.OTHER) if outcome else ObjectFileStatus.OTHER
        if outcome == Outcome.NOT_FOUND:
            candidate["download"] = {"status": "notfound"}
        elif status in (ObjectFileStatus.MALFORMED, ObjectFileStatus.UNSUPPORTED):
            candidate["download"] = {"status": "ok"}
            candidate["debug"] = {"status": "malformed", **({"details": details} if details else {})}
        else:
            candidate["download"] = {"status": "error", **({"details": details} if details else {})}
        # The worst outcome so far stays unless a later file is found.
        if result.status in (ObjectFileStatus.MISSING, ObjectFileStatus.OTHER) or status == ObjectFileStatus.MALFORMED:
            result.status = status
        return False

    async def _from_sources(self, module: ModuleQuery, sources: RequestSources, result: ResolvedModule) -> None:
        """Search the external sources (config, then allowed request sources): one search per
        plan and debug id at a time, its outcome cached (the file in the downloads cache, its
        candidates beside it; not found 1 h, malformed 24 h; fetch errors not at all)."""
        plan_hash = fingerprint(sources.plan.sources)
        names = (str(module.code_id or ""), module.code_file, module.debug_file)
        dl_key = keys.native_source_search("native-source", plan_hash, str(module.debug_id), names, self.purpose)
        meta_key = keys.native_source_search("native-source-meta", plan_hash, str(module.debug_id), names,
                                             self.purpose)
        downloads = self.caches.downloads

        async def search() -> Path | Outcome:
            if self.fetcher is None and any(not isinstance(s, FilesystemSource) for s in sources.plan.sources):
                raise _SearchFailed(ObjectFileStatus.OTHER, [])
            found = await find_debug_file(sources.plan, module, downloads.temp_dir, fetcher=self.fetcher,  # type: ignore[arg-type]
                                          max_bytes=self.settings.limits.max_download_bytes, purpose=self.purpose,
                                          s3_clients=self.deps.s3_clients)
            meta: dict[str, Any] = {"candidates": found.candidates}
            if found.path is None:
                if found.status not in ("missing", "malformed"):
                    status = ObjectFileStatus.TIMEOUT if found.status == "timeout" else ObjectFileStatus.FETCHING_FAILED
                    raise _SearchFailed(status, found.candidates)
                await asyncio.to_thread(self.caches.derived.put_bytes, meta_key, json.dumps(meta).encode())
                return Outcome.MALFORMED if found.status == "malformed" else Outcome.NOT_FOUND
            self.downloads.inc()
            path, info = found.path, found.object_info
            assert info is not None
            if info.fat:
                thin = await asyncio.to_thread(downloads.temp_path)
                await asyncio.to_thread(objects.copy_slice, path, info, thin)
                path.unlink(missing_ok=True)
                path = thin
            meta.update(sha1=await asyncio.to_thread(_sha1_file, path), arch=info.arch.value)
            await asyncio.to_thread(self.caches.derived.put_bytes, meta_key, json.dumps(meta).encode())
            return path

        try:
            entry = await get_or_compute(downloads, self.coalescer, dl_key, search)
        except _SearchFailed as failed:
            result.candidates.extend(failed.candidates)
            if result.status == ObjectFileStatus.MISSING:
                result.status = failed.status
            return
        meta_entry = await asyncio.to_thread(self.caches.derived.get, meta_key)
        meta = json.loads(meta_entry.path.read_bytes()) if meta_entry and meta_entry.path else {}
        result.candidates.extend(meta.get("candidates") or [
            {"source": "sources", "location": "remembered outcome of an earlier search of the configured sources",
             "download": {"status": "notfound" if entry.outcome == Outcome.NOT_FOUND else "malformed"}}])
        if entry.is_negative:
            if entry.outcome == Outcome.MALFORMED or result.status == ObjectFileStatus.MISSING:
                result.status = _OUTCOME_STATUS.get(entry.outcome, ObjectFileStatus.MISSING)  # type: ignore[arg-type]
            return
        if "sha1" not in meta:
            await asyncio.to_thread(downloads.delete, dl_key)  # its meta was evicted: search again next time
            meta["sha1"] = await asyncio.to_thread(_sha1_file, entry.path)
        candidate = result.candidates[-1] if result.candidates else {}

        async def cached() -> CacheEntry:
            return entry

        await self._convert_and_open(meta["sha1"], meta.get("arch"), cached, candidate, result)


class _SearchFailed(Exception):
    """A source search that failed in a way not worth caching (timeouts, fetch errors)."""

    def __init__(self, status: ObjectFileStatus, candidates: list[dict[str, Any]]) -> None:
        super().__init__(status.value)
        self.status = status
        self.candidates = candidates


def _sha1_file(path: Path | None) -> str:
    digest = hashlib.sha1()
    assert path is not None
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _format_outcome(exc: FormatError) -> Outcome:
    return Outcome.UNSUPPORTED if isinstance(exc, UnsupportedFormat) else Outcome.MALFORMED


@dataclass
class RequestSources:
    """Where one request looks beyond the scope's uploads (docs/api.md).

    `plan` holds the server's sources, then the request's usable ones, plus the request
    sources left out (and why). The scope's uploads stand in for a `type: "sentry"`
    source, so its id names the uploads' candidates, which Sentry maps back to its
    own "project debug files".
    """

    plan: SourcePlan = field(default_factory=SourcePlan)
    uploads_source_id: str = UPLOADS_SOURCE

    @property
    def not_found_message(self) -> str:
        if self.uploads_source_id != UPLOADS_SOURCE:
            return ("No object files listed on this source: the scope's uploads stand in for "
                    "Sentry's internal source, and none matches")
        return "No object files listed on this source: nothing uploaded to this scope matches"

    def skipped_candidates(self) -> list[dict[str, Any]]:
        return [{"source": s.id, "location": s.reason, "download": {"status": "notfound"}} for s in self.plan.skipped]

    @classmethod
    def from_request(cls, settings: Settings, request_sources: list[dict[str, Any]] | None) -> RequestSources:
        """Raises InvalidShape for request sources of the wrong shape."""
        plan = plan_sources(settings.sources, request_sources, settings.allow_request_sources)
        sentry = next((s for s in request_sources or [] if s.get("type") == "sentry"), None)
        return cls(plan, str(sentry.get("id") or "sentry:project") if sentry else UPLOADS_SOURCE)

