"""Per-scope indexes over uploads: debug id → stored debug files; JS debug id and
release + dist + URL → a file inside an artifact bundle.

Indexes are small JSON objects in `Storage` (keys from `symbolicator.keys`), one
object per entry, because S3 has no atomic append and no conditional write that
every S3-compatible store honours: a debug-id index is a folder holding one
object per stored file (native) or per file type (JS), and a reader lists the
folder and merges what it holds. Writers never read-modify-write, so two
instances (or processes) adding to one index at the same moment both land; a
rewrite of the same entry carries the same meaning. A release + URL index was
already one object per URL.

Every change to a scope's indexes ends with `mark_changed`, which rewrites the
scope's generation marker. A store that cannot tell cheaply whether one object
changed (S3) is then asked one question per request instead of one per index:
has the marker changed (`IndexReader`)?
"""

from __future__ import annotations

import json
import threading
import uuid
from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Any

import orjson

from symbolicator import keys
from symbolicator.errors import ObjectNotFound
from symbolicator.sourcemaps.urls import strip_hostname
from symbolicator.storage.base import ABSENT, Storage
from symbolicator.types import GLOBAL_SCOPE, DebugId, Scope

MAX_INDEX_BYTES = 4 * 1024 * 1024
MAX_ENTRIES = 1000
"""Entries read from one index folder; more (a debug id uploaded as a thousand different files) are left out."""


def read_json(storage: Storage, key: str) -> dict[str, Any] | None:
    """The index at `key` (an object, or an entry folder merged), None when there is none."""
    return _parse_index(_read_raw(storage, key)[0])


def _read_raw(storage: Storage, key: str) -> tuple[bytes | None, int]:
    """The index's bytes (an entry folder's merged into one JSON object) and what they cost to remember."""
    if keys.entries_scope(key) is None:
        try:
            data = storage.get_bytes(key, max_bytes=MAX_INDEX_BYTES)
        except ObjectNotFound:
            return None, len(key)
        return data, len(key) + len(data)
    legacy = keys.legacy_index(key)
    old, size = _read_raw(storage, legacy) if legacy else (None, 0)  # written before entry folders: merged first
    parts = [value] if (value := _parse_index(old)) is not None else []
    size += len(key)
    for n, entry in enumerate(storage.list(key)):
        if n >= MAX_ENTRIES:
            break
        try:
            data = storage.get_bytes(entry, max_bytes=MAX_INDEX_BYTES)
        except ObjectNotFound:  # removed since the listing
            continue
        size += len(entry) + len(data)
        value = _parse_index(data)
        if value is not None:
            parts.append(value)
    if not parts:
        return None, size
    return orjson.dumps(merge_entries(parts)), size


def merge_entries(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One index from its entries: `files` lists are joined (one per stored object key), `files` maps united."""
    out: dict[str, Any] = {}
    listed: dict[str, Any] = {}
    for part in parts:
        for name, value in part.items():
            if name == "files" and isinstance(value, list):
                listed.update((str(f.get("key")), f) for f in value if isinstance(f, dict))
            elif name == "files" and isinstance(value, dict):
                out.setdefault("files", {}).update(value)
            else:
                out[name] = value
    if listed:
        out["files"] = [listed[k] for k in sorted(listed)]
    return out


def _parse_index(data: bytes | None) -> dict[str, Any] | None:
    if data is None:
        return None
    value = orjson.loads(data)
    return value if isinstance(value, dict) else None


def write_json(storage: Storage, key: str, value: dict[str, Any]) -> None:
    storage.put_bytes(key, json.dumps(value, sort_keys=True, separators=(",", ":")).encode())


def add_debug_file(storage: Storage, scope: Scope, debug_id: DebugId, code_id: str, entry: dict[str, Any]) -> None:
    """Record one stored debug file under its debug id (an ELF's id cannot give back its build id)."""
    write_json(storage, keys.debug_id_index_entry(scope, debug_id, entry["key"]),
               {"debug_id": str(debug_id), "code_id": code_id, "files": [entry]})


def mark_changed(storage: Storage, scope: Scope) -> None:
    """A new generation marker for `scope`: called after its indexes were written, before the
    upload that wrote them reports success, so a request that starts later sees the change."""
    storage.put_bytes(keys.index_generation(scope), uuid.uuid4().hex.encode())


def add_js_debug_id(storage: Storage, scope: Scope, debug_id: DebugId, file_type: str, ref: dict[str, Any]) -> None:
    write_json(storage, keys.js_debug_id_index_entry(scope, debug_id, file_type),
               {"debug_id": str(debug_id), "files": {file_type: ref}})


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
        """An entry folder is versioned by its scope's generation marker (a folder's own mtime can miss a change
        made within the same clock tick; the marker is a new object, so a new inode, at every change)."""
        scope = keys.entries_scope(key)
        version = self.storage.version(key if scope is None else keys.index_generation(Scope(scope)))
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
        data, size = _read_raw(self.storage, key)  # size: what it costs in memory, give or take the parsed form
        value = _parse_index(data)
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
