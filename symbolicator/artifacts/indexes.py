"""Per-scope indexes over uploads: debug id → stored debug files; JS debug id and
release + dist + URL → a file inside an artifact bundle.

Indexes are small JSON objects in `Storage` (keys from `symbolicator.keys`), one
object per entry, because S3 has no atomic append. The debug-id indexes are
read-modify-write; a lock per key serialises writers inside one instance, and
two instances racing on the same debug id at the same moment is the one case
where the later writer wins (both wrote the same files, so nothing is lost but
an index line that the next upload of that file restores).

Every change to a scope's indexes ends with `mark_changed`, which rewrites the
scope's generation marker. A store that cannot tell cheaply whether one object
changed (S3) is then asked one question per request instead of one per index:
has the marker changed (`IndexReader`)?
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict, defaultdict
from collections.abc import Hashable, Iterable
from typing import Any

import orjson

from symbolicator import keys
from symbolicator.errors import ObjectNotFound
from symbolicator.sourcemaps.urls import strip_hostname
from symbolicator.storage.base import ABSENT, Storage
from symbolicator.types import GLOBAL_SCOPE, DebugId, Scope

MAX_INDEX_BYTES = 4 * 1024 * 1024
_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
_locks_guard = threading.Lock()


def _lock(key: str) -> threading.Lock:
    with _locks_guard:
        return _locks[key]


def read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    try:
        data = storage.get_bytes(key, max_bytes=MAX_INDEX_BYTES)
    except ObjectNotFound:
        return None
    return _parse_index(data)


def _parse_index(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    value = orjson.loads(data)
    return value if isinstance(value, dict) else None


def write_json(storage: Storage, key: str, value: dict[str, Any]) -> None:
    storage.put_bytes(key, json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def add_debug_file(storage: Storage, scope: Scope, debug_id: DebugId, code_id: str, entry: dict[str, Any]) -> None:
    """Record one stored debug file under its debug id (an ELF's id cannot give back its build id)."""
    key = keys.debug_id_index(scope, debug_id)
    with _lock(key):
        index = read_json(storage, key) or {"debug_id": str(debug_id), "code_id": code_id, "files": []}
        files = [f for f in index.get("files", []) if f.get("key") != entry["key"]]
        files.append(entry)
        index["files"] = sorted(files, key=lambda f: f["key"])
        index["code_id"] = code_id
        write_json(storage, key, index)


def mark_changed(storage: Storage, scope: Scope) -> None:
    """A new generation marker for `scope`: called after its indexes were written, before the
    upload that wrote them reports success, so a request that starts later sees the change."""
    storage.put_bytes(keys.index_generation(scope), uuid.uuid4().hex.encode())


def add_js_debug_id(storage: Storage, scope: Scope, debug_id: DebugId, file_type: str, ref: dict[str, Any]) -> None:
    key = keys.js_debug_id_index(scope, debug_id)
    with _lock(key):
        index = read_json(storage, key) or {"debug_id": str(debug_id), "files": {}}
        index["files"][file_type] = ref
        write_json(storage, key, index)


def add_js_release_file(storage: Storage, scope: Scope, release: str, dist: str | None, url: str,
                        ref: dict[str, Any]) -> None:
    write_json(storage, keys.js_release_index(scope, release, dist, url), {**ref, "url": url,
                                                                          "release": release, "dist": dist})


def js_release_keys(scope: Scope, release: str, dist: str | None, abs_path: str) -> list[str]:
    """Where a release file for `abs_path` may be recorded, in the order its URL candidates are tried."""
    return [keys.js_release_index(scope, release, dist, c) for c in url_candidates(abs_path)]


def url_candidates(abs_path: str) -> list[str]:
    """Symbolicator's order: the URL, without query, `~` + path, `~` + path without query.

    `~/` in an uploaded file's url means "any host": scheme and authority are dropped whether
    or not there is a host (`app:///index.android.bundle` → `~/index.android.bundle`).
    """
    url = abs_path.split("#", 1)[0]
    relative = strip_hostname(url)
    out = [url, url.split("?", 1)[0], "~" + relative, "~" + relative.split("?", 1)[0]]
    return list(dict.fromkeys(out))


def bundle_ref(bundle_key: str, bundle_sha1: str, path: str, url: str | None,
               headers: dict[str, str], file_type: str) -> dict[str, Any]:
    return {"bundle": bundle_key, "bundle_sha1": bundle_sha1, "path": path, "url": url,
            "headers": headers, "type": file_type}


def release_entries(storage: Storage, scope: Scope, release: str, dist: str | None) -> Iterable[str]:
    return storage.list(keys.js_release_prefix(scope, release, dist))


NOT_REMEMBERED = object()
REMEMBER_MAX_OBJECT = 64 * 1024
REMEMBER_MAX_BYTES = 32 * 1024 * 1024
MAX_GENERATION_BYTES = 256


class IndexReader:
    """Reads indexes for the service, remembering each with a version of it.

    A request must see every upload at once, another instance's too, so nothing
    here expires by time. The version comes from one of two places:
    - the storage's own `version` of the index, where it can tell cheaply (local
      storage: one stat), so `remembered` answers a known index without reading
      it, cheaply enough for the event loop: a warm request then takes no trip
      through a thread (~0.25 ms each, see PERFORMANCE-NOTES);
    - else (S3) the scope's generation marker (`mark_changed`), which the caller
      reads once per request (`generation`, a blocking call) and passes in: while
      it is unchanged, every index of the scope is answered from memory, so a
      warm request costs one small read instead of one per index.

    The answers are shared: callers must not modify them.
    """

    def __init__(self, storage: Storage, max_bytes: int = REMEMBER_MAX_BYTES) -> None:
        self.storage = storage
        self._known: OrderedDict[str, tuple[Hashable, dict[str, Any] | None, int]] = OrderedDict()
        self._max_bytes = max_bytes
        self._bytes = 0
        self._lock = threading.Lock()
        self.needs_generation = storage.version(keys.index_generation(GLOBAL_SCOPE)) is None

    def generation(self, scope: Scope) -> Hashable | None:
        """Blocking: the scope's generation marker where the storage cannot version each index
        itself; None where it can (nothing to read)."""
        if not self.needs_generation:
            return None
        try:
            return ("generation", self.storage.get_bytes(keys.index_generation(scope),
                                                         max_bytes=MAX_GENERATION_BYTES))
        except ObjectNotFound:
            return ABSENT

    def _version(self, key: str, generation: Hashable | None) -> Hashable | None:
        version = self.storage.version(key)
        return generation if version is None else version

    def remembered(self, key: str, generation: Hashable | None = None) -> dict[str, Any] | None | object:
        """The index at `key` if known and unchanged (None: no such object); else `NOT_REMEMBERED`."""
        known = self._known.get(key)
        if known is None:
            return NOT_REMEMBERED
        version = self._version(key, generation)
        if version is None or version != known[0]:
            return NOT_REMEMBERED
        with self._lock:
            if key in self._known:
                self._known.move_to_end(key)
        return known[1]

    def read(self, key: str, generation: Hashable | None = None) -> dict[str, Any] | None:
        """Blocking: the index at `key` from the store (None when absent), remembered when it can be
        checked. `generation` must have been read before: a change in between makes the memory
        stale-marked, never wrong."""
        version = self._version(key, generation)
        try:
            data = self.storage.get_bytes(key, max_bytes=MAX_INDEX_BYTES)
        except ObjectNotFound:
            data = None
        value = _parse_index(data)
        size = len(key) + len(data or b"")  # what it costs in memory, give or take the parsed form
        if version is not None and size <= REMEMBER_MAX_OBJECT:
            with self._lock:
                old = self._known.pop(key, None)
                self._bytes += size - (old[2] if old else 0)
                self._known[key] = (version, value, size)
                while self._bytes > self._max_bytes:
                    self._bytes -= self._known.popitem(last=False)[1][2]
        return value

    def first(self, keys_in_order: Iterable[str], generation: Hashable | None = None) -> dict[str, Any] | None:
        """Blocking: the first index found among `keys_in_order`."""
        for key in keys_in_order:
            found = self.read(key, generation)
            if found is not None:
                return found
        return None

    def first_remembered(self, keys_in_order: Iterable[str],
                         generation: Hashable | None = None) -> dict[str, Any] | None | object:
        """`first` from memory alone, or `NOT_REMEMBERED` as soon as a key before the answer is unknown."""
        for key in keys_in_order:
            found = self.remembered(key, generation)
            if found is not None:
                return found
        return None
