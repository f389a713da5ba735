"""Identifying a wasm module: the `ObjectInfo` an upload is stored and found under.

Sentry's rules (symbolic's `WasmObject`): debug id = the first 16 bytes of the `build_id`
custom section as a UUID, code id = the whole section in hex; kind `lib`, arch `wasm32`.
A module without a `build_id` (or with one shorter than 16 bytes) gets no debug id here
(symbolic answers the nil UUID, which finds nothing): it cannot be uploaded. The module with
DWARF is stored as `debuginfo`, one without as `executable`; `external_debug_info` becomes the
`debug_link` (the name of the separate debug file).
"""

from __future__ import annotations

import mmap
import os
import uuid
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from symbolicator.errors import MalformedObject
from symbolicator.native.objects import ObjectFeatures, ObjectInfo
from symbolicator.native.wasm.module import WASM_MAGIC, debug_id_bytes, read_module
from symbolicator.types import Arch, CodeId, DebugId, ObjectKind


def wasm_info(f: BinaryIO, size: int) -> ObjectInfo:
    """The one object of the module open in `f` (`size` bytes); raises `MalformedObject`."""
    if size < 8:
        raise MalformedObject(f"truncated wasm module: {size} bytes, shorter than its header")
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        module = read_module(mm)
    first16 = debug_id_bytes(module.build_id)
    names = any(section.name == "name" for section in module.sections)
    return ObjectInfo(
        file_format="wasm",
        arch=Arch.WASM32,
        code_id=CodeId.from_bytes(module.build_id) if module.build_id else None,
        debug_id=DebugId(uuid.UUID(bytes=first16)) if first16 is not None else None,
        object_kind=ObjectKind.DEBUGINFO if module.has_dwarf else ObjectKind.EXECUTABLE,
        object_type="library",
        features=ObjectFeatures(has_debug_info=module.has_dwarf, has_symbols=names),
        size=size,
        debug_link=module.external_debug_info,
    )


def separate_debug_file(path: Path) -> Path:
    """The debug file a stripped module names in `external_debug_info`, when it lies beside it.

    Only the last path segment is used (the section usually holds a URL relative to the
    module's); a candidate whose `build_id` differs from the module's is not its debug file.
    `path` itself when it has DWARF, names nothing, or nothing matching is there (the CLI's
    offline counterpart of `.gnu_debuglink`; the service finds debug files by id instead).
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        module = wasm_info(f, size)
    if module.features.has_debug_info or not module.debug_link:
        return path
    name = urlsplit(module.debug_link).path.rpartition("/")[2]
    candidate = path.parent / name
    if not name or not candidate.is_file() or candidate.resolve() == path.resolve():
        return path
    with open(candidate, "rb") as f:
        if f.read(4) != WASM_MAGIC:
            return path
        other = wasm_info(f, os.fstat(f.fileno()).st_size)
    return candidate if other.code_id == module.code_id else path
