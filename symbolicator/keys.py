"""The only place that formats storage and cache keys (API.md §3).

Upload and lookup call the same functions, so a file stored by one is found by
the other. Every variable part is either validated (scope, hex ids) or encoded
(release, dist, url), so no key can escape its prefix.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote

from symbolicator.types import CodeId, DebugId, ObjectKind, Scope

_SHA1 = re.compile(r"^[0-9a-f]{40}$")


def _sha1_hex(value: str) -> str:
    if not _SHA1.match(value):
        raise ValueError(f"not a lowercase SHA-1 hex digest: {value!r}")
    return value


def _segment(text: str) -> str:
    """Encode free text (a release, a dist) as one safe path segment.

    The `v=` prefix keeps `.` and `..` from ever being a whole segment.
    """
    return "v=" + quote(text, safe="")


def chunk(sha1: str) -> str:
    return f"chunks/{_sha1_hex(sha1)[:2]}/{sha1}"


def assemble_state(scope: Scope, file_sha1: str) -> str:
    return f"assemble/{scope}/{_sha1_hex(file_sha1)}.json"


def unified_path(file_id: str, kind: ObjectKind) -> str:
    """Sentry's unified layout below a prefix: `{id[0:2]}/{id[2:]}/{kind}`."""
    return f"{file_id[:2]}/{file_id[2:]}/{kind.value}"


def debug_file(scope: Scope, code_id: CodeId, kind: ObjectKind) -> str:
    return f"files/{scope}/{unified_path(code_id.value, kind)}"


def debug_id_index(scope: Scope, debug_id: DebugId) -> str:
    return f"index/{scope}/debug-id/{debug_id}.json"


def bundle(scope: Scope, bundle_sha1: str) -> str:
    return f"bundles/{scope}/{_sha1_hex(bundle_sha1)}"


def index_generation(scope: Scope) -> str:
    """Rewritten after every change to the scope's indexes (`indexes.mark_changed`)."""
    return f"index/{scope}/generation"


def js_debug_id_index(scope: Scope, debug_id: DebugId) -> str:
    return f"index/{scope}/js/debug-id/{debug_id}.json"


def js_release_prefix(scope: Scope, release: str, dist: str | None) -> str:
    return f"index/{scope}/js/release/{_segment(release)}/{_segment(dist) if dist else '_'}/"


def js_release_index(scope: Scope, release: str, dist: str | None, url: str) -> str:
    digest = hashlib.sha1(url.encode("utf-8")).hexdigest()
    return f"{js_release_prefix(scope, release, dist)}{digest}.json"


SHARED_CACHE_VERSION = 1  # v1: converted file + extras JSON + trailer (caching/shared.py)


def shared_cache(cache_key: str) -> str:
    """Where the shared cache (`cache.shared`) keeps the converted file of a derived-cache key."""
    return f"shared/v{SHARED_CACHE_VERSION}/{cache_key}"


def cache_key(kind: str, version: int, *parts: str) -> str:
    """A derived- or download-cache key: kind, format version, then identifying parts.

    The version is part of the key, so a format change never reads an old entry.
    """
    return "/".join([kind, f"v{version}", *parts])
