"""Publishing an assembled JavaScript artifact bundle: store it, index every file.

Each file gets two ways in, as the JS lookup order needs them: by debug id (the
`debug-id` header sentry-cli puts on injected files and their maps) and by
release + dist + `~/url`. Index entries point into the stored bundle rather than
copying files out, so one bundle object serves every file it holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from symbolicator import keys
from symbolicator.artifacts import indexes
from symbolicator.artifacts.bundle_archive import JS_TYPES, read_bundle
from symbolicator.errors import UnsupportedFormat
from symbolicator.storage.base import Storage
from symbolicator.types import Scope


@dataclass(frozen=True)
class BundleSummary:
    files: int
    debug_ids: int
    release_urls: int
    bundle_debug_id: str | None


def publish(storage: Storage, scopes: list[Scope], path: Path, sha1: str, release: str | None,
            dist: str | None, max_entries: int, max_uncompressed: int) -> BundleSummary:
    """Validate the bundle at `path`, then store and index it in every scope; raises FormatError."""
    bundle = read_bundle(path, max_entries, max_uncompressed)
    if not bundle.is_artifact_bundle:
        raise UnsupportedFormat("the bundle holds no minified sources or source maps")
    release = release or bundle.attributes.get("release") or None
    dist = dist or bundle.attributes.get("dist") or None
    js_files = [f for f in bundle.files if f.type in JS_TYPES]
    for scope in scopes:
        bundle_key = keys.bundle(scope, sha1)
        storage.put_file(bundle_key, path)
        for f in js_files:
            ref = indexes.bundle_ref(bundle_key, sha1, f.path, f.url, dict(f.headers), f.type)
            if f.debug_id is not None:
                indexes.add_js_debug_id(storage, scope, f.debug_id, f.type, ref)
            if release and f.url:
                indexes.add_js_release_file(storage, scope, release, dist, f.url, ref)
        indexes.mark_changed(storage, scope)
    return BundleSummary(
        files=len(js_files),
        debug_ids=len({f.debug_id for f in js_files if f.debug_id}),
        release_urls=len([f for f in js_files if f.url]) if release else 0,
        bundle_debug_id=bundle.attributes.get("debug_id"),
    )
