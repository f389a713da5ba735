"""Finding a frame's minified file and source map, in Symbolicator's order, and converting once.

Order for one `abs_path` (docs/javascript.md): the debug id of a `sourcemap` module
whose `code_file` is the `abs_path` (or, once the minified file is in hand, its
`//# debugId=` comment) → the files of bundles already opened for this request
and the scope's release/dist index, by URL candidates → the minified file's
`SourceMap`/`X-SourceMap` header or last `sourceMappingURL` comment (relative,
absolute or `data:`) → scraping (`scraping.py`).

Costs are paid once. A bundle is downloaded once into the downloads cache
(keyed by its storage key: bundles are content-addressed, so the key never
changes meaning); a map is converted once, in the worker pool, into a sourcemap
cache stored in the derived cache under the content identity of the map and of
the minified file (its scopes give function names) plus
`SOURCEMAP_CACHE_VERSION`; an original fetched apart from a map without
`sourcesContent` is converted once for function names (`fetched_names.py`).
A file inside a bundle is identified by the bundle's SHA-1 and its member name,
a scraped or embedded one by the SHA-256 of its bytes, so a warm lookup never
reads a map just to hash it. Downloads and conversions are coalesced per key:
50 concurrent events needing one map cause one download and one conversion. Opened caches (by their content key),
minified line indexes and bundle manifests stay in small LRUs the service owns (`JsMemos`), so
a warm request reads no JSON and no ZIP member and touches no cache database:
its only I/O is the release index lookup, which sees a new upload at once.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import Counter

from symbolicator import keys
from symbolicator.artifacts import indexes
from symbolicator.artifacts.bundle_archive import (
    BundleFile,
    open_zip,
    read_bundle,
    read_capped,
)
from symbolicator.caching import conversion_output, get_or_compute
from symbolicator.caching.memo import Lru, OpenedFiles
from symbolicator.errors import (
    CacheFormatError,
    FormatError,
    InvalidId,
    JsErrorKind,
    LookupFailure,
    MalformedSourceMap,
    ScrapeFailure,
    SymbolicatorError,
    WorkerCrashed,
    WorkerOutOfMemory,
)
from symbolicator.service.js.fetched_names import original_names
from symbolicator.service.js.request import JsRequest, Module, is_valid_abs_path, symbolicate
from symbolicator.service.js.scraping import Scraper
from symbolicator.service.parts import ServiceParts
from symbolicator.service.stored_files import ScopeIndexes, cached_download
from symbolicator.sourcemaps.context import LineIndex
from symbolicator.sourcemaps.facebook import is_hermes_bytecode
from symbolicator.sourcemaps.inject import existing_debug_id
from symbolicator.sourcemaps.original_names import OriginalNames
from symbolicator.sourcemaps.smcache import SOURCEMAP_CACHE_VERSION, SmCache, build_from_sources
from symbolicator.sourcemaps.urls import (
    InvalidBase64SourceMap,
    decode_data_url,
    find_source_mapping_url,
    is_data_url,
    resolve_map_location,
)
from symbolicator.types import DebugId, Scope

log = logging.getLogger(__name__)
BUNDLE_CACHE_VERSION = 1


@dataclass(frozen=True)
class JsMemos:
    """What one service keeps open across requests (`JsService` owns one), all keyed by content:
    opened sourcemap caches, minified files' line indexes and end comments, bundle manifests,
    converted functions of originals fetched apart from their maps (`fetched_names.py`)."""

    caches: OpenedFiles[SmCache] = field(default_factory=lambda: OpenedFiles(128))
    lines: Lru[str, LineIndex] = field(default_factory=lambda: Lru(256, 256 * 1024 * 1024))
    comments: Lru[str, Comments] = field(default_factory=lambda: Lru(4096))
    manifests: Lru[str, dict[str, BundleFile]] = field(default_factory=lambda: Lru(64))
    names: Lru[str, OriginalNames] = field(default_factory=lambda: Lru(1024, 64 * 1024 * 1024))


@dataclass(frozen=True)
class Comments:
    """What the end of a minified file says: its `//# debugId=` and last `sourceMappingURL`."""

    debug_id: str | None
    source_mapping_url: str | None


def inspect_minified(data: bytes) -> tuple[LineIndex, Comments]:
    """Lines and comments of a minified file (a thread job: a bundle can be megabytes).

    Hermes bytecode has neither: it is treated as the empty file Sentry stores for it (no context)."""
    text = "" if is_hermes_bytecode(data) else data.decode("utf-8", "replace")
    return LineIndex(text), Comments(existing_debug_id(text), find_source_mapping_url(text))


def convert_sourcemap(map_bytes: bytes, minified: bytes | None, out_path: str,
                      names_max_memory: int | None = None) -> int:
    """Worker-pool job: map (+ minified source for function names, within `names_max_memory` bytes;
    0: names skipped and flagged; None: unbounded; or Hermes bytecode) → sourcemap cache file; its size."""
    if is_hermes_bytecode(minified):
        data = build_from_sources(map_bytes, None, bytecode=minified)
    else:
        data = build_from_sources(map_bytes, minified, names_max_memory=names_max_memory)
    del map_bytes, minified
    with open(out_path, "wb") as f:
        f.write(data)
    return len(data)


def convert_sourcemap_files(map_path: str, minified_path: str, out_path: str, names_max_memory: int) -> int:
    """`convert_sourcemap` with the inputs in files: a pickled 64 MB file plus its map would be
    copied twice more on their way to the worker (the pickle, then its unpickled objects)."""
    with open(map_path, "rb") as f:
        map_bytes = f.read()
    with open(minified_path, "rb") as f:
        minified = f.read()
    return convert_sourcemap(map_bytes, minified, out_path, names_max_memory)


def _write_inputs(paths: tuple[Path, Path], data: tuple[bytes, bytes]) -> None:
    for path, content in zip(paths, data, strict=False):
        with open(path, "wb") as f:
            f.write(content)


@dataclass(frozen=True)
class JsDeps(ServiceParts):
    """What a JS request needs from the service (`JsService` holds one for its lifetime)."""

    conversions: Counter | None = None
    memos: JsMemos = field(default_factory=JsMemos)


@dataclass
class JsFile:
    """A found file. `url` is the real URL it stands for; `identity` names its content for cache keys."""

    url: str
    identity: str
    headers: Mapping[str, str]
    origin: Any
    resolved_with: str
    load: Callable[[], Awaitable[bytes]]
    _data: bytes | None = field(default=None, repr=False)

    async def read(self) -> bytes:
        if self._data is None:
            self._data = await self.load()
        return self._data


def _constant(data: bytes) -> Callable[[], Awaitable[bytes]]:
    async def load() -> bytes:
        return data

    return load


def _sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data).hexdigest()


def _strip_fragment(url: str) -> str:
    return url.split("#", 1)[0]


def real_url(bundle_url: str | None, abs_path: str) -> str:
    """A bundle's `~/path` as a URL on the frame's host (`~/` means any host; `app:///` has an empty one)."""
    if not bundle_url:
        return abs_path
    parts = urlsplit(abs_path)
    if bundle_url.startswith("~/") and parts.scheme and "://" in abs_path:
        return f"{parts.scheme}://{parts.netloc}{bundle_url[1:]}"
    return bundle_url


class JsLookup:
    """File finding for one request; memoizes modules and files per URL."""

    def __init__(self, deps: JsDeps, scope: Scope, request: JsRequest) -> None:
        self.deps = deps
        self.scope = scope
        self.request = request
        self.indexes = ScopeIndexes(deps.index_reader, scope)
        self.max_bytes = deps.settings.fetch.max_bytes
        self.attempts: dict[str, dict[str, Any]] = {}
        self.used_bundles: dict[str, None] = {}
        self._modules: dict[str, asyncio.Task[Module]] = {}
        self._files: dict[str, asyncio.Task[JsFile]] = {}
        self._sources: dict[str, asyncio.Task[Sequence[str] | None]] = {}
        self._names: dict[str, asyncio.Task[OriginalNames | None]] = {}
        self._open_bundles: dict[str, None] = {}
        options = request.scraping
        self.scraper = Scraper(deps.fetcher, deps.caches, deps.coalescer, deps.settings.scraping, options.enabled,
                               options.allowed_origins, options.headers, self.max_bytes, self._attempt)

    def scraping_attempts(self) -> list[dict[str, Any]]:
        return list(self.attempts.values())

    def _attempt(self, url: str, status: str, reason: str | None = None, details: str | None = None) -> None:
        entry: dict[str, Any] = {"url": url, "status": status}
        if reason:
            entry["reason"] = reason
        if details:
            entry["details"] = details
        self.attempts.setdefault(url, entry)

    async def module(self, abs_path: str) -> Module:
        """Found once per request and path; every frame asks again, so a found one answers at once."""
        task = self._modules.get(abs_path)
        if task is None:
            task = self._modules[abs_path] = asyncio.ensure_future(self._module(abs_path))
        elif task.done():
            return task.result()
        return await asyncio.shield(task)

    async def original_source(self, url: str) -> Sequence[str] | None:
        """An original source without `sourcesContent`: from uploads or the website, as lines."""
        task = self._sources.get(url)
        if task is None:
            task = self._sources[url] = asyncio.ensure_future(self._original_source(url))
        return await asyncio.shield(task)

    async def original_function(self, url: str, line: int, column: int) -> str | None:
        """The function enclosing a 1-based position of an original without `sourcesContent`, fetched
        like `original_source` ("" anonymous; None: outside every function, or the original is not
        to be had)."""
        task = self._names.get(url)
        if task is None:
            task = self._names[url] = asyncio.ensure_future(self._original_names(url))
        names = await asyncio.shield(task)
        return names.function_at(line, column) if names is not None else None

    async def _original_names(self, url: str) -> OriginalNames | None:
        """A store that is down costs the names, not the frame."""
        try:
            found = await self.find_file(url)
        except LookupFailure:
            return None
        except SymbolicatorError as exc:
            log.warning("looking up the original %s for names failed: %s", url, exc)
            return None
        return await original_names(self.deps, found)

    async def _original_source(self, url: str) -> Sequence[str] | None:
        try:
            found = await self.find_file(url)
            return await self._line_index(found)
        except LookupFailure:
            return None

    async def _line_index(self, found: JsFile) -> LineIndex:
        lines = self.deps.memos.lines.get(found.identity)
        if lines is not None:
            return lines

        async def read_and_index() -> LineIndex:
            data = await found.read()
            fresh = await asyncio.to_thread(lambda: LineIndex(data.decode("utf-8", "replace")))
            self.deps.memos.lines.put(found.identity, fresh, len(data))
            return fresh

        return await self.deps.coalescer.run(f"lines:{found.identity}", read_and_index)

    async def _module(self, abs_path: str) -> Module:
        """A store that is down or a cache disk that is full fails this module's frames, not the job."""
        try:
            return await self._find_module(abs_path)
        except SymbolicatorError as exc:
            log.warning("looking up %s failed: %s", abs_path, exc)
            module = Module(abs_path)
            module.minified_error = JsErrorKind.MISSING_SOURCE
            return module

    async def _find_module(self, abs_path: str) -> Module:
        module = Module(abs_path)
        debug_id = self.request.modules.get(abs_path)
        minified: JsFile | None = None
        sourcemap: JsFile | None = None
        if debug_id is not None:
            minified, sourcemap = await self._by_debug_id(debug_id, abs_path)
        if minified is None:
            try:
                minified = await self.find_file(abs_path)
            except LookupFailure as exc:
                module.minified_error = exc.error
                return module
        try:
            module.lines, comments = await self._inspect(minified)
        except LookupFailure as exc:  # found in a bundle, but over the size cap or unreadable
            module.minified_error, module.minified_details = exc.error, exc.details
            return module
        if sourcemap is None and debug_id is None:
            found_id = _parse_debug_id(comments.debug_id)
            if found_id is not None:
                _, sourcemap = await self._by_debug_id(found_id, abs_path)
        if sourcemap is not None:
            ref = self._map_reference(minified, comments)
            if ref and not is_data_url(ref):
                sourcemap.url = _map_location(abs_path, ref)
        else:
            try:
                sourcemap = await self._referenced_map(minified, comments, abs_path)
            except LookupFailure as exc:
                module.map_error = {"type": exc.error}
                module.resolved_with = minified.resolved_with
                return module
        module.sourcemap = sourcemap.url
        module.sourcemap_origin = sourcemap.origin
        module.resolved_with = sourcemap.resolved_with
        try:
            module.cache = await self._convert(sourcemap, minified)
        except LookupFailure as exc:  # the map's bundle member is over the size cap or unreadable
            module.map_error = {"type": JsErrorKind.MISSING_SOURCEMAP, "url": sourcemap.url}
            if exc.details:
                module.map_error["details"] = exc.details
        except FormatError as exc:
            log.info("malformed source map %s: %s", sourcemap.url, exc)
            module.map_error = {"type": JsErrorKind.MALFORMED_SOURCEMAP, "url": sourcemap.url}
        except WorkerCrashed as exc:  # over the worker's memory limit even without names
            log.warning("converting %s failed: %s", sourcemap.url, exc)
            module.map_error = {"type": JsErrorKind.MALFORMED_SOURCEMAP, "url": sourcemap.url, "details": str(exc)}
        except SymbolicatorError as exc:
            log.warning("converting %s failed: %s", sourcemap.url, exc)
            module.map_error = {"type": JsErrorKind.MALFORMED_SOURCEMAP, "url": sourcemap.url}
        return module

    @staticmethod
    def _map_reference(minified: JsFile, comments: Comments) -> str | None:
        """The `SourceMap`/`X-SourceMap` header, else the last `sourceMappingURL` comment."""
        return minified.headers.get("sourcemap") or minified.headers.get("x-sourcemap") or comments.source_mapping_url

    async def _inspect(self, minified: JsFile) -> tuple[LineIndex, Comments]:
        """Lines and comments of a minified file, read and scanned once per process.

        Coalesced by content: a bundle's text and line index are held once however many
        requests arrive for it at the same time (each read of a 60 MB bundle costs ~300 MB).
        """
        lines, comments = self.deps.memos.lines.get(minified.identity), self.deps.memos.comments.get(minified.identity)
        if lines is not None and comments is not None:
            return lines, comments

        async def read_and_scan() -> tuple[LineIndex, Comments]:
            data = await minified.read()
            fresh_lines, fresh_comments = await asyncio.to_thread(inspect_minified, data)
            self.deps.memos.lines.put(minified.identity, fresh_lines, len(data))
            self.deps.memos.comments.put(minified.identity, fresh_comments)
            return fresh_lines, fresh_comments

        return await self.deps.coalescer.run(f"inspect:{minified.identity}", read_and_scan)

    async def _referenced_map(self, minified: JsFile, comments: Comments, abs_path: str) -> JsFile:
        ref = self._map_reference(minified, comments)
        if not ref:
            raise LookupFailure(JsErrorKind.MISSING_SOURCEMAP)
        if is_data_url(ref):
            try:
                data = decode_data_url(ref)
            except InvalidBase64SourceMap:
                raise LookupFailure(JsErrorKind.INVALID_BASE64_SOURCEMAP) from None
            except MalformedSourceMap:
                raise LookupFailure(JsErrorKind.MALFORMED_SOURCEMAP) from None
            return JsFile(abs_path, "sha256:" + _sha256(data), {}, "embedded", minified.resolved_with,
                          _constant(data), data)
        try:
            return await self.find_file(_map_location(abs_path, ref))
        except LookupFailure as exc:
            kind = JsErrorKind.SCRAPING_DISABLED if exc.error is JsErrorKind.SCRAPING_DISABLED else None
            raise LookupFailure(kind or JsErrorKind.MISSING_SOURCEMAP) from None

    async def _by_debug_id(self, debug_id: DebugId, abs_path: str) -> tuple[JsFile | None, JsFile | None]:
        index = await self.indexes.first([keys.js_debug_id_index(self.scope, debug_id)])  # {"files": {kind: ref}}
        files = (index or {}).get("files") or {}
        found: list[JsFile | None] = []
        for kind in ("minified_source", "source_map"):
            ref = files.get(kind)
            if not isinstance(ref, dict):
                found.append(None)
                continue
            url = real_url(ref.get("url"), abs_path) if kind == "source_map" else abs_path
            try:
                found.append(await self._from_ref(ref, "debug-id", url))
            except LookupFailure:
                found.append(None)
        return found[0], found[1]

    async def find_file(self, url: str) -> JsFile:
        """Bundles already open → release index → scraping; memoized per URL within the request."""
        url = _strip_fragment(url)
        task = self._files.get(url)
        if task is None:
            task = self._files[url] = asyncio.ensure_future(self._find_file(url))
        return await asyncio.shield(task)

    async def _find_file(self, url: str) -> JsFile:
        candidates = indexes.url_candidates(url)
        for bundle_key in list(self._open_bundles):
            manifest = self.deps.memos.manifests.get(bundle_key)
            for candidate in candidates if manifest else ():
                entry = manifest.get(candidate) if manifest else None
                if entry is not None:
                    ref = indexes.bundle_ref(bundle_key, bundle_key.rsplit("/", 1)[-1], entry.path, entry.url,
                                             dict(entry.headers), entry.type)
                    return await self._from_ref(ref, "release" if self.request.release else "url", url)
        if self.request.release:
            release, dist = self.request.release, self.request.dist
            released = await self.indexes.first(indexes.js_release_keys(self.scope, release, dist, url))
            if released is not None:
                return await self._from_ref(released, "release", url)
        return await self._scrape(url)

    async def _from_ref(self, ref: dict[str, Any], resolved_with: str, url: str) -> JsFile:
        """A file inside a stored artifact bundle (downloaded once into the downloads cache)."""
        bundle_key, member = str(ref.get("bundle")), str(ref.get("path"))
        sha1 = str(ref.get("bundle_sha1") or bundle_key.rsplit("/", 1)[-1])
        await self._open_bundle(bundle_key)
        self.used_bundles[sha1] = None
        self._attempt(url, "not_attempted")  # found without the web, whatever the scheme (local paths too)
        headers = {str(k).lower(): str(v) for k, v in (ref.get("headers") or {}).items()}
        described: dict[str, str] = {}
        if ref.get("url"):
            described["abs_path"] = str(ref["url"])
        if headers.get("debug-id"):
            described["debug_id"] = headers["debug-id"]
        origin = {"bundled": [f"bundle://{bundle_key}", {str(ref.get("type") or "source"): described}]}

        async def load() -> bytes:
            return await self._read_member(bundle_key, member)

        return JsFile(url, f"bundle:{sha1}:{member}", headers, origin, resolved_with, load)

    async def _open_bundle(self, bundle_key: str) -> None:
        """Make the bundle's files findable for this request: from its memoized manifest (bundles are
        content-addressed), else by downloading it."""
        if self.deps.memos.manifests.get(bundle_key) is not None:
            self._open_bundles[bundle_key] = None
            return
        await self._bundle(bundle_key)

    async def _bundle(self, bundle_key: str) -> Path:
        """The downloaded bundle's path; its manifest is indexed by URL on first use."""
        storage, downloads = self.deps.storage, self.deps.caches.downloads
        key = keys.cache_key("bundle", BUNDLE_CACHE_VERSION, bundle_key)
        entry = await cached_download(storage, downloads, self.deps.coalescer, key, bundle_key)
        if entry.path is None:
            raise LookupFailure(JsErrorKind.MISSING_SOURCE)
        if self.deps.memos.manifests.get(bundle_key) is None:
            limits = self.deps.settings.limits
            try:
                bundle = await asyncio.to_thread(read_bundle, entry.path, limits.max_bundle_entries,
                                                 limits.max_bundle_uncompressed_bytes)
            except (FormatError, OSError) as exc:
                log.warning("stored bundle %s cannot be read: %s", bundle_key, exc)
                raise LookupFailure(JsErrorKind.MISSING_SOURCE) from exc
            by_url = {f.url: f for f in bundle.files if f.url}
            self.deps.memos.manifests.put(bundle_key, by_url)
        self._open_bundles[bundle_key] = None
        return entry.path

    async def _read_member(self, bundle_key: str, member: str) -> bytes:
        limits = self.deps.settings.limits
        for attempt in range(2):
            path = await self._bundle(bundle_key)
            try:
                return await asyncio.to_thread(_read_zip_member, path, member, limits.max_bundle_entries,
                                               limits.max_bundle_uncompressed_bytes, self.max_bytes)
            except FileNotFoundError:
                if attempt:
                    raise LookupFailure(JsErrorKind.MISSING_SOURCE) from None
                await asyncio.to_thread(self.deps.caches.downloads.delete,
                                        keys.cache_key("bundle", BUNDLE_CACHE_VERSION, bundle_key))
            except FormatError as exc:
                log.warning("bundle %s member %s: %s", bundle_key, member, exc)
                raise LookupFailure(JsErrorKind.MISSING_SOURCE, str(exc)) from exc
        raise LookupFailure(JsErrorKind.MISSING_SOURCE)

    async def _scrape(self, url: str) -> JsFile:
        try:
            found = await self.scraper.scrape(url)
        except ScrapeFailure as exc:
            raise LookupFailure(exc.error) from None
        return JsFile(url, "sha256:" + found.digest, found.headers, url, "scraping", found.load)

    async def _convert(self, sourcemap: JsFile, minified: JsFile) -> SmCache:
        derived = self.deps.caches.derived
        key = keys.cache_key("smcache", SOURCEMAP_CACHE_VERSION, _sha256(f"{sourcemap.identity}\0{minified.identity}"))
        workers = self.deps.workers

        async def convert() -> Path:
            shared = self.deps.caches.shared
            found = await shared.fetch(key, derived) if shared is not None else None
            if found is not None:  # converted by another instance
                return found[0]
            data, source = await sourcemap.read(), await minified.read()
            inputs = await asyncio.to_thread(lambda: (derived.temp_path(".map"), derived.temp_path(".js")))
            budget = self.deps.settings.limits.js_names_max_memory_bytes
            try:
                async with conversion_output(derived, ".smcache") as out:
                    args = (str(inputs[0]), str(inputs[1]), str(out))
                    await asyncio.to_thread(_write_inputs, inputs, (data, source))
                    try:
                        await workers.run(convert_sourcemap_files, *args, budget)
                    except WorkerCrashed as exc:
                        if isinstance(exc, WorkerOutOfMemory):
                            raise  # a MemoryError in the name pass already skips names: this was the map
                        # The name pass is the part a hostile minified file controls: positions without it.
                        log.warning("converting %s with function names failed (%s); converting without",
                                    sourcemap.url, exc)
                        await workers.run(convert_sourcemap_files, *args, 0)
                    if self.deps.conversions is not None:
                        self.deps.conversions.inc()
                    if shared is not None:
                        await shared.publish(key, out, {}, derived)
            finally:
                for path in inputs:
                    path.unlink(missing_ok=True)
            return out

        cached = await self.deps.memos.caches.get(derived, key, sourcemap.url)
        if cached is not None:
            return cached
        for attempt in range(2):
            entry = await get_or_compute(derived, self.deps.coalescer, key, convert)
            if entry.path is None:
                raise MalformedSourceMap(f"{sourcemap.url} is not a valid source map ({entry.outcome})")
            try:
                opened = await asyncio.to_thread(SmCache.open, entry.path, sourcemap.url)
            except (CacheFormatError, FileNotFoundError):
                if attempt:
                    raise
                await asyncio.to_thread(derived.delete, key)
                continue
            return self.deps.memos.caches.put(key, opened, sourcemap.url, path=entry.path)
        raise MalformedSourceMap(f"{sourcemap.url}: the sourcemap cache cannot be built")


async def symbolicate_js(request: JsRequest, deps: JsDeps, scope: Scope) -> dict[str, Any]:
    """One request's completed payload; modules of distinct files are found concurrently first."""
    lookup = JsLookup(deps, scope, request)
    paths = {_abs_path(f) for t in request.stacktraces for f in t["frames"]
             if isinstance(f.get("lineno"), int) and f["lineno"] >= 1}
    await asyncio.gather(*(lookup.module(p) for p in paths if is_valid_abs_path(p)))
    payload = await symbolicate(request, lookup.module, lookup.original_source,
                                original_function=lookup.original_function)
    payload["scraping_attempts"] = lookup.scraping_attempts()
    payload["used_artifact_bundles"] = list(lookup.used_bundles)
    return payload


def _abs_path(frame: dict[str, Any]) -> Any:
    path = frame.get("abs_path")
    return path[6:] if isinstance(path, str) and path.startswith("async ") else path


def _map_location(abs_path: str, ref: str) -> str:
    """A map reference resolved against the minified file's URL, query and fragment dropped."""
    return resolve_map_location(abs_path, ref).split("#", 1)[0].split("?", 1)[0]


def _parse_debug_id(text: str | None) -> DebugId | None:
    if not text:
        return None
    try:
        return DebugId.parse(text)
    except InvalidId:
        return None


def _read_zip_member(path: Path, member: str, max_entries: int, max_uncompressed: int, max_bytes: int) -> bytes:
    with open_zip(path, max_entries, max_uncompressed) as zf:
        return read_capped(zf, member, max_bytes)
