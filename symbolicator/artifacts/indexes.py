"""Per-scope indexes over uploads: debug id → stored debug files; JS debug id and
release + dist + URL → a file inside an artifact bundle.

Indexes are small JSON objects in `Storage` (keys from `symbolicator.keys`), one
object per entry, because S3 has no atomic append. The debug-id indexes are
read-modify-write; a lock per key serialises writers inside one instance, and
two instances racing on the same debug id at the same moment is the one case
where the later writer wins (both wrote the same files, so nothing is lost but
an index line that the next upload of that file restores).
"""

from __future__ import annotations

import json
import threading
from collections import defaultdict
from typing import Any, Iterable
from urllib.parse import urlsplit

from symbolicator import keys
from symbolicator.errors import ObjectNotFound
from symbolicator.storage.base import Storage
from symbolicator.types import DebugId, Scope

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
    value = json.loads(data)
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


def debug_files(storage: Storage, scope: Scope, debug_id: DebugId) -> dict[str, Any] | None:
    return read_json(storage, keys.debug_id_index(scope, debug_id))


def add_js_debug_id(storage: Storage, scope: Scope, debug_id: DebugId, file_type: str, ref: dict[str, Any]) -> None:
    key = keys.js_debug_id_index(scope, debug_id)
    with _lock(key):
        index = read_json(storage, key) or {"debug_id": str(debug_id), "files": {}}
        index["files"][file_type] = ref
        write_json(storage, key, index)


def js_by_debug_id(storage: Storage, scope: Scope, debug_id: DebugId) -> dict[str, Any] | None:
    """`{"files": {"minified_source": ref, "source_map": ref}}` or None."""
    return read_json(storage, keys.js_debug_id_index(scope, debug_id))


def add_js_release_file(storage: Storage, scope: Scope, release: str, dist: str | None, url: str,
                        ref: dict[str, Any]) -> None:
    write_json(storage, keys.js_release_index(scope, release, dist, url), {**ref, "url": url,
                                                                          "release": release, "dist": dist})


def js_by_release(storage: Storage, scope: Scope, release: str, dist: str | None,
                  abs_path: str) -> dict[str, Any] | None:
    """The first release file matching one of `abs_path`'s URL candidates."""
    for candidate in url_candidates(abs_path):
        found = read_json(storage, keys.js_release_index(scope, release, dist, candidate))
        if found is not None:
            return found
    return None


def url_candidates(abs_path: str) -> list[str]:
    """Symbolicator's order: the URL, without query, `~` + path, `~` + path without query.

    `~/` in an uploaded file's url means "any host", so the host is dropped.
    """
    url = abs_path.split("#", 1)[0]
    out = [url, url.split("?", 1)[0]]
    parts = urlsplit(url)
    if parts.scheme and parts.netloc:
        path = parts.path or "/"
        tail = f"{path}?{parts.query}" if parts.query else path
        out += ["~" + tail, "~" + path]
    elif url.startswith("~/"):
        out.append(url.split("?", 1)[0])
    return list(dict.fromkeys(out))


def bundle_ref(bundle_key: str, bundle_sha1: str, path: str, url: str | None,
               headers: dict[str, str], file_type: str) -> dict[str, Any]:
    return {"bundle": bundle_key, "bundle_sha1": bundle_sha1, "path": path, "url": url,
            "headers": headers, "type": file_type}


def release_entries(storage: Storage, scope: Scope, release: str, dist: str | None) -> Iterable[str]:
    return storage.list(keys.js_release_prefix(scope, release, dist))
