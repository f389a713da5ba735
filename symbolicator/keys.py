"""The only place that formats storage and cache keys (docs/storage.md).

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
MAX_SEGMENT = 200


def _sha1_hex(value: str) -> str:
    if not _SHA1.match(value):
        raise ValueError(f"not a lowercase SHA-1 hex digest: {value!r}")
    return value


def _segment(text: str) -> str:
    """Encode free text (a release, a dist) as one safe path segment.

    The `v=` prefix keeps `.` and `..` from ever being a whole segment. An encoding longer
    than `MAX_SEGMENT` (file systems refuse names over 255 bytes) becomes `h=` + its SHA-256:
    requests cap release and dist lengths, but a bundle's manifest may still carry a long one.
    """
    encoded = "v=" + quote(text, safe="")
    if len(encoded) > MAX_SEGMENT:
        return "h=" + hashlib.sha256(text.encode("utf-8")).hexdigest()
    return encoded


def chunk(sha1: str) -> str:
    return f"chunks/{_sha1_hex(sha1)[:2]}/{sha1}"


def chunk_owner(org: Scope, sha1: str) -> str:
    """Marks that `org` sent the chunk itself: only then may it assemble the chunk (`chunks.ChunkStore`)."""
    if "/" in org.value:
        raise ValueError(f"chunks are owned by an organization, not by {org}")
    return f"chunk-owners/{org}/{_sha1_hex(sha1)[:2]}/{sha1}"


def assemble_state(scope: Scope, file_sha1: str) -> str:
    return f"assemble/{scope}/{_sha1_hex(file_sha1)}.json"


def bundle_assemble_state(scope: Scope, bundle_sha1: str, release: str | None, dist: str | None) -> str:
    """One state per release and dist: the same bundle assembled under a new release must be indexed again."""
    tag = hashlib.sha1(f"{release or ''}\0{dist or ''}".encode()).hexdigest()
    return f"assemble/{scope}/{_sha1_hex(bundle_sha1)}/{tag}.json"


def unified_path(file_id: str, kind: ObjectKind) -> str:
    """Sentry's unified layout below a prefix: `{id[0:2]}/{id[2:]}/{kind}`."""
    return f"{file_id[:2]}/{file_id[2:]}/{kind.value}"


def debug_file(scope: Scope, code_id: CodeId, kind: ObjectKind) -> str:
    return f"files/{scope}/{unified_path(code_id.value, kind)}"


_ENTRY_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
_ENTRIES = re.compile(r"^index/(?P<scope>[^@]+)/@(?P<kind>debug-id|js-debug-id)/(?P<id>[^/]+)/$")
_LEGACY_INDEX = {"debug-id": "debug-id", "js-debug-id": "js/debug-id"}


def debug_id_index(scope: Scope, debug_id: DebugId) -> str:
    """A folder of entries, one object per stored file (`indexes.add_debug_file`): writers never overwrite each other.

    The `@` cannot occur in a scope, so no scope's keys can collide with another's.
    """
    return f"index/{scope}/@debug-id/{debug_id}/"


def debug_id_index_entry(scope: Scope, debug_id: DebugId, file_key: str) -> str:
    return f"{debug_id_index(scope, debug_id)}{hashlib.sha1(file_key.encode('utf-8')).hexdigest()}.json"


def bundle(scope: Scope, bundle_sha1: str) -> str:
    return f"bundles/{scope}/{_sha1_hex(bundle_sha1)}"


def index_generation(scope: Scope) -> str:
    """Rewritten after every change to the scope's indexes (`indexes.mark_changed`)."""
    return f"index/{scope}/generation"


def js_debug_id_index(scope: Scope, debug_id: DebugId) -> str:
    """A folder of entries, one per file type (`minified_source`, `source_map`, …)."""
    return f"index/{scope}/@js-debug-id/{debug_id}/"


def js_debug_id_index_entry(scope: Scope, debug_id: DebugId, file_type: str) -> str:
    if not _ENTRY_NAME.match(file_type):
        raise ValueError(f"not an index entry name: {file_type!r}")
    return f"{js_debug_id_index(scope, debug_id)}{file_type}.json"


def entries_scope(index: str) -> str | None:
    """The scope text of an entry-folder index key, None for any other key."""
    m = _ENTRIES.match(index)
    return m.group("scope") if m else None


def legacy_index(index: str) -> str | None:
    """Where releases before the entry folders kept the same index, as one read-modify-written object."""
    m = _ENTRIES.match(index)
    return f"index/{m.group('scope')}/{_LEGACY_INDEX[m.group('kind')]}/{m.group('id')}.json" if m else None


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


def native_source_search(kind: str, plan_hash: str, debug_id: str, names: tuple[str | None, ...],
                         purpose: str) -> str:
    """The cached outcome of one module's search of the external sources (`kind`: the file or
    its meta). `names` are what the layouts and filters build paths from besides the ids (code
    id, code file, debug file as the request names them): a renamed debug file
    (`rewrite_first_module`) is another search."""
    digest = hashlib.sha1("\0".join(n or "" for n in names).encode("utf-8")).hexdigest()
    return cache_key(kind, 1, plan_hash, debug_id, digest, purpose)


def js_original_names(version: int, identity: str, grammar: str) -> str:
    """The converted functions of an original JS/TS source fetched apart from its map
    (`sourcemaps/original_names.py`): by the file's content identity (`lookup.JsFile.identity`) and
    the grammar its name selects, since one text parses differently as TypeScript."""
    digest = hashlib.sha256(f"{identity}\0{grammar}".encode("utf-8", "surrogatepass")).hexdigest()
    return cache_key("js-original-names", version, digest)
