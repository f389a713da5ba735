"""Publishing an assembled debug file: identify it, store every object, index it.

A fat Mach-O is stored slice by slice (each under its own UUID), because every
lookup asks for one architecture. Objects are published first and the debug-id
index afterwards, so an index entry never points at a missing file; the
assemble state (written by the caller last) is what tells a client "done".
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from symbolicator import keys
from symbolicator.artifacts import indexes
from symbolicator.artifacts.bundle_archive import read_bundle
from symbolicator.artifacts.mapping_archives import mapping_entries
from symbolicator.artifacts.pipeline import PartCopier
from symbolicator.errors import MalformedObject, UnsupportedFormat
from symbolicator.native import objects
from symbolicator.storage.base import Storage
from symbolicator.types import CodeId, DebugId, Scope

_DATA_TYPE = {"executable": "exe", "library": "lib", "debug_companion": "dbg", "object": "rel", "other": "other"}
"""symbolic's ObjectKind names, which sentry-cli parses (`src` for source bundles)."""


@dataclass(frozen=True)
class Published:
    """One stored object; `key` is its unified-layout key."""

    key: str
    info: objects.ObjectInfo
    size: int


def feature_names(info: objects.ObjectInfo) -> list[str]:
    f = info.features
    names = []
    if f.has_symbols:
        names.append("symtab")
    if f.has_debug_info:
        names.append("debug")
    if f.has_unwind_info:
        names.append("unwind")
    if f.has_sources:
        names.append("sources")
    return names


def storage_id(info: objects.ObjectInfo) -> CodeId:
    """The id a file is stored under: the code id; source bundles without one use the debug id.

    A PE image and its PDB share the lowercase breakpad form of their debug id (`<guid hex><age hex>`), as
    `symsorter`'s unified layout stores them: `executable` and `debuginfo` side by side."""
    if info.file_format in ("pe", "pdb") and info.debug_id is not None:
        return CodeId(info.debug_id.breakpad.lower())
    if info.code_id is not None:
        return info.code_id
    if info.file_format in ("sourcebundle", "breakpad", "proguard") and info.debug_id is not None:
        return CodeId(info.debug_id.uuid.hex)
    raise MalformedObject(
        "the file has no build-id/UUID, so it could not be found again: link with -Wl,--build-id"
        if info.file_format == "elf" else "the object has no code id"
    )


def publish(storage: Storage, scope: Scope, path: Path, file_sha1: str, name: str,
            work_dir: Path, max_entries: int, max_uncompressed: int,
            stored_parts: Sequence[str] = (), copier: PartCopier | None = None) -> list[Published]:
    """Identify the file at `path` and store each object it holds; raises FormatError.

    `stored_parts` are storage keys whose concatenation is this file (its upload
    chunks): a file stored whole is then composed from them inside the storage
    backend instead of being sent again; `copier`, when its key is the one the file gets, has composed it already
    while the chunks arrived (`artifacts.pipeline`), and publishing only completes it.
    """
    with mapping_entries(path, work_dir, max_entries, max_uncompressed) as mappings:
        if mappings:
            return [p for m in mappings for p in publish(storage, scope, m, file_sha1, f"proguard/{m.name}",
                                                         work_dir, max_entries, max_uncompressed)]
    infos = [_proguard_named(info, name) for info in objects.identify(path)]
    if not infos:
        raise UnsupportedFormat("the file holds no object")
    if infos[0].file_format == "sourcebundle":
        bundle = read_bundle(path, max_entries, max_uncompressed)
        if bundle.is_artifact_bundle:
            raise UnsupportedFormat("this is a JavaScript artifact bundle: "
                                    "upload it with `sentry-cli sourcemaps upload`")
    out: list[Published] = []
    for info in infos:
        key = keys.debug_file(scope, storage_id(info), info.object_kind)
        if len(infos) > 1 or info.offset:
            with tempfile.NamedTemporaryFile(dir=work_dir, prefix="slice-") as tmp:
                objects.copy_slice(path, info, Path(tmp.name))
                storage.put_file(key, Path(tmp.name))
        elif copier is not None and copier.key == key and copier.complete(len(stored_parts)):
            pass
        elif stored_parts:
            storage.compose(key, stored_parts)
        else:
            storage.put_file(key, path)
        out.append(Published(key=key, info=info, size=info.size or path.stat().st_size))
    for p in out:
        if p.info.debug_id is not None:
            indexes.add_debug_file(storage, scope, p.info.debug_id, str(storage_id(p.info)), {
                "key": p.key,
                "kind": p.info.object_kind.value,
                "file_format": p.info.file_format,
                "object_type": p.info.object_type,
                "arch": p.info.arch.value,
                "name": p.info.object_name or name,
                "features": feature_names(p.info),
                "sha1": file_sha1,
                "size": p.size,
            })
    if any(p.info.debug_id is not None for p in out):
        indexes.mark_changed(storage, scope)
    return out


_PROGUARD_NAME = re.compile(r"(?:^|/)proguard/([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\.txt$")


def _proguard_named(info: objects.ObjectInfo, name: str) -> objects.ObjectInfo:
    """A mapping uploaded as `proguard/<uuid>.txt` (`sentry-cli upload-proguard --uuid`, which Android
    builds use: the app reports that UUID) is found by that UUID, not by its content's."""
    m = _PROGUARD_NAME.search(name)
    if info.file_format != "proguard" or m is None:
        return info
    return replace(info, debug_id=DebugId(uuid.UUID(m.group(1))))


def dif_json(published: list[Published], file_sha1: str, name: str) -> dict[str, Any]:
    """What Sentry answers for an assembled debug file; sentry-cli prints it with --wait."""
    first = published[0].info
    debug_id = str(first.debug_id) if first.debug_id else None
    kind = "sourcebundle" if first.file_format == "sourcebundle" else first.file_format
    return {
        "id": file_sha1,
        "uuid": debug_id,
        "debugId": debug_id,
        "codeId": str(first.code_id) if first.code_id else None,
        "objectName": first.object_name or name,
        "cpuName": first.arch.value if len(published) == 1 else "multiple",
        "sha1": file_sha1,
        "symbolType": kind,
        "size": sum(p.size for p in published),
        "dateCreated": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "headers": {"Content-Type": "application/octet-stream"},
        "data": {
            "type": "src" if kind == "sourcebundle" else _DATA_TYPE.get(first.object_type, "other"),
            "features": sorted({n for p in published for n in feature_names(p.info)}),
        },
        "objects": [
            {"debugId": str(p.info.debug_id) if p.info.debug_id else None, "arch": p.info.arch.value, "key": p.key,
             "kind": p.info.object_kind.value}
            for p in published
        ],
    }

