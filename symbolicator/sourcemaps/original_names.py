"""The functions of ONE original source fetched apart from its map, converted once into a small cache.

Why: naming inlined code by the function that encloses its *original* position (`inlining.py`)
needs the original text. When the map carries it (`sourcesContent`) that happens at conversion,
but many builds ship maps without it (rollup `sourcemapExcludeSources`, webpack
`nosources-source-map`) and upload or serve the originals beside them. The sourcemap cache
depends on the map's content only, so such an original cannot be folded into it: it gets its own
cache, keyed by the original's content (and its grammar, chosen by name), built in the worker
pool with the very parse `inlining.py` uses (`scopes.original_scopes`, within the name pass's
memory budget), and reused by every map and request that points at the same file.

The file is a header then 8-byte-aligned little-endian sections::

    magic "ORIGFNS\\0" | version u32 | flags u32 (bit 0: skipped, over the memory budget)
    | boundary count u64 | names size u64
    KEYS  u64[m]  boundaries (original line0 << 32 | UTF-16 col0) of the innermost function, sorted
    NAMES u32[m]  index into the name list of the function holding from that boundary on
                  (NONE: no function there, top-level code)
    the name list as a UTF-8 JSON array ("" for an anonymous function)

A lookup is one bisect. Opening checks magic, version and every size, so a truncated or foreign
file is refused with `CacheFormatError` and the caller rebuilds it.
"""

from __future__ import annotations

import logging
import struct
from bisect import bisect_right

import numpy as np
import orjson

from symbolicator.errors import CacheFormatError, OverBudget
from symbolicator.sourcemaps.inlining import scope_label
from symbolicator.sourcemaps.scopes import original_scopes
from symbolicator.sourcemaps.smcache import NONE, flatten_ranges

log = logging.getLogger(__name__)
# v1: boundaries, name indices, JSON names, skipped flag
ORIGINAL_NAMES_VERSION = 1
MAGIC = b"ORIGFNS\x00"
_HEADER = struct.Struct("<8sIIQQ")
_SKIPPED = 1


def build(path: str, text: bytes, max_memory: int | None = None) -> bytes:
    """Parse an original source (grammar by `path`'s name) into cache bytes. Over `max_memory` (or
    out of memory) the cache is empty and flagged skipped: asking again would cost the same parse."""
    try:
        scopes = original_scopes(path, text.decode("utf-8", "replace"), max_memory)
    except (OverBudget, MemoryError) as exc:
        log.warning("original function names of %s skipped: %s", path, exc or "out of memory")
        return _HEADER.pack(MAGIC, ORIGINAL_NAMES_VERSION, _SKIPPED, 0, 2) + b"[]"
    flat = flatten_ranges(scopes)
    names: list[str] = []
    ids: dict[str, int] = {}
    index = np.empty(len(flat), dtype="<u4")
    for i, (_, scope) in enumerate(flat):
        if scope < 0:
            index[i] = NONE
            continue
        label = scope_label(scopes[scope])
        index[i] = ids.setdefault(label, len(names))
        if index[i] == len(names):
            names.append(label)
    keys = np.fromiter((key for key, _ in flat), dtype="<u8", count=len(flat))
    blob = orjson.dumps(names)
    header = _HEADER.pack(MAGIC, ORIGINAL_NAMES_VERSION, 0, len(flat), len(blob))
    return header + keys.tobytes() + index.tobytes() + _pad(4 * len(flat)) + blob


def _pad(n: int) -> bytes:
    return b"\x00" * (-n % 8)


class OriginalNames:
    """An opened cache (held in memory: it is small, a few bytes per original function)."""

    def __init__(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            raise CacheFormatError("original-names cache is truncated (no header)")
        magic, version, flags, count, names_size = _HEADER.unpack_from(data, 0)
        if magic != MAGIC:
            raise CacheFormatError("not an original-names cache (bad magic)")
        if version != ORIGINAL_NAMES_VERSION:
            raise CacheFormatError(f"original-names cache version {version}, expected {ORIGINAL_NAMES_VERSION}")
        names_at = _HEADER.size + 12 * count + len(_pad(4 * count))
        if names_at + names_size != len(data):
            raise CacheFormatError(f"original-names cache is truncated or corrupt ({len(data)} bytes)")
        self.skipped = bool(flags & _SKIPPED)
        self._keys = memoryview(data)[_HEADER.size : _HEADER.size + 8 * count].cast("Q")
        self._index = memoryview(data)[_HEADER.size + 8 * count : _HEADER.size + 12 * count].cast("I")
        try:
            names = orjson.loads(data[names_at:])
        except orjson.JSONDecodeError as exc:
            raise CacheFormatError(f"original-names cache names are corrupt: {exc}") from None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise CacheFormatError("original-names cache names are not a list of strings")
        if any(i != NONE and i >= len(names) for i in self._index):
            raise CacheFormatError("original-names cache refers to a missing name")
        self._names: list[str] = names
        self.size = len(data)

    def __len__(self) -> int:
        return len(self._keys)

    def function_at(self, line: int, column: int) -> str | None:
        """The function enclosing 1-based `line`, 1-based UTF-16 `column` of the original source:
        its name, "" for an anonymous one, None outside every function (or when it was skipped)."""
        if line < 1 or column < 1 or line > 1 << 32 or column > 1 << 32:
            return None
        at = bisect_right(self._keys, ((line - 1) << 32) | (column - 1)) - 1
        if at < 0:
            return None
        i = self._index[at]
        return None if i == NONE else self._names[i]


def build_file(source_path: str, name: str, out_path: str, max_memory: int | None) -> int:
    """Worker-pool job: the original in `source_path` (named `name`, for its grammar) → cache file; its size."""
    with open(source_path, "rb") as f:
        text = f.read()
    data = build(name, text, max_memory)
    del text
    with open(out_path, "wb") as f:
        f.write(data)
    return len(data)

