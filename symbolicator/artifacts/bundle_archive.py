"""Artifact bundles and source bundles: `SYSB` + u32 version + a ZIP with `manifest.json`.

Both come from sentry-cli (symbolic's SourceBundle format). They are untrusted
archives, so reading one checks, before anything is stored: the magic, that the
ZIP parses, the entry count, the *declared* uncompressed sizes (ZIP readers stop
at the declared size, so capping the declared total caps the work: a zip bomb is
refused up front), and every name (no `..`, absolute paths, backslashes or NUL).
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from symbolicator.errors import InvalidId, MalformedObject
from symbolicator.types import DebugId

MAGIC = b"SYSB"
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 * 1024 * 1024
JS_TYPES = ("minified_source", "source_map", "indexed_ram_bundle")


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One manifest entry. `path` is the ZIP member name; `url` like `~/app.min.js`."""

    path: str
    type: str
    url: str | None
    headers: Mapping[str, str]
    debug_id: DebugId | None

    @property
    def sourcemap(self) -> str | None:
        return self.headers.get("sourcemap") or self.headers.get("x-sourcemap")


@dataclass(frozen=True)
class Bundle:
    files: tuple[BundleFile, ...]
    attributes: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_artifact_bundle(self) -> bool:
        """JS files inside: minified sources and maps, not native sources."""
        return any(f.type in JS_TYPES for f in self.files)


def check_member_name(name: str) -> None:
    if (
        not name
        or "\0" in name
        or "\\" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part == ".." for part in PurePosixPath(name).parts)
    ):
        raise MalformedObject(f"bundle entry name {name!r} is not a safe relative path")


def check_magic(head: bytes, size: int) -> None:
    """MalformedObject unless `head` (the file's first bytes) starts a bundle."""
    if head[:4] != MAGIC:
        raise MalformedObject(f"not an artifact bundle: it does not start with SYSB ({size} bytes)")


def open_zip(path: Path, max_entries: int, max_uncompressed: int) -> zipfile.ZipFile:
    """Open the ZIP after the 8-byte header, refusing unsafe or oversized archives."""
    with open(path, "rb") as f:
        if f.read(4) != MAGIC:
            raise MalformedObject("not a bundle: the file does not start with SYSB")
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise MalformedObject(f"bundle is not a valid ZIP archive: {exc}") from exc
    infos = zf.infolist()
    if len(infos) > max_entries:
        zf.close()
        raise MalformedObject(f"bundle has {len(infos)} entries, the limit is {max_entries}")
    total = 0
    for info in infos:
        check_member_name(info.filename)
        total += info.file_size
    if total > max_uncompressed:
        zf.close()
        raise MalformedObject(f"bundle would unpack to {total} bytes, the limit is {max_uncompressed}")
    return zf


def read_capped(zf: zipfile.ZipFile, name: str, max_bytes: int) -> bytes:
    """Read one member, trusting neither its declared size nor its compression ratio."""
    try:
        with zf.open(name) as member:
            data = member.read(max_bytes + 1)
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError) as exc:
        raise MalformedObject(f"bundle entry {name!r} cannot be read: {exc}") from exc
    except Exception as exc:  # zlib.error, NotImplementedError for unknown compression
        raise MalformedObject(f"bundle entry {name!r} cannot be decompressed: {exc}") from exc
    if len(data) > max_bytes:
        raise MalformedObject(f"bundle entry {name!r} is larger than {max_bytes} bytes")
    return data


def read_bundle(path: Path, max_entries: int, max_uncompressed: int) -> Bundle:
    with open_zip(path, max_entries, max_uncompressed) as zf:
        names = set(zf.namelist())
        if MANIFEST not in names:
            raise MalformedObject("bundle has no manifest.json")
        try:
            manifest = json.loads(read_capped(zf, MANIFEST, MAX_MANIFEST_BYTES))
        except ValueError as exc:
            raise MalformedObject(f"bundle manifest.json is not JSON: {exc}") from exc
        return _parse_manifest(manifest, names)


def _parse_manifest(manifest: Any, names: set[str]) -> Bundle:
    if not isinstance(manifest, dict):
        raise MalformedObject("bundle manifest.json is not a JSON object")
    raw_files = manifest.get("files", {})
    if not isinstance(raw_files, dict):
        raise MalformedObject("bundle manifest `files` is not an object")
    files: list[BundleFile] = []
    for name, entry in raw_files.items():
        check_member_name(name)
        if name not in names:
            raise MalformedObject(f"bundle manifest names {name!r}, which is not in the archive")
        if not isinstance(entry, dict):
            raise MalformedObject(f"bundle manifest entry {name!r} is not an object")
        headers = entry.get("headers") or {}
        if not isinstance(headers, dict):
            raise MalformedObject(f"bundle manifest entry {name!r} has bad headers")
        headers = {str(k).lower(): str(v) for k, v in headers.items()}
        debug_id = None
        if headers.get("debug-id"):
            try:
                debug_id = DebugId.parse(headers["debug-id"])
            except InvalidId as exc:
                raise MalformedObject(f"bundle entry {name!r}: {exc}") from exc
        url = entry.get("url")
        files.append(BundleFile(
            path=name,
            type=str(entry.get("type", "")),
            url=url if isinstance(url, str) and url else None,
            headers=headers,
            debug_id=debug_id,
        ))
    attributes = {k: str(v) for k, v in manifest.items() if k not in ("files", "source_links") and v is not None
                  and isinstance(v, (str, int))}
    return Bundle(files=tuple(files), attributes=attributes)
