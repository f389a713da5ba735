"""Parsing Source Map v3 files: regular maps and index maps, into sorted arrays.

A map is validated completely when it is parsed, so that a broken map fails once,
with a message naming the defect, instead of answering some lookups wrongly:
not JSON, a `version` other than 3, bad base64 or VLQ overflow in `mappings`,
source or name indices out of range, negative positions, index-map sections
out of order. The parse result keeps the mappings as parallel NumPy arrays
sorted by generated position; `smcache.py` turns them into the on-disk cache.

Index maps are flattened the way `@jridgewell/trace-mapping`'s `FlattenMap` does
it: a section's first line is shifted by the section's column offset, and a
section's mappings stop where the next section begins (which may be mid-line).
Each section costs a few hundred microseconds of fixed work (its own decode and
validation), so an index map may hold at most `MAX_SECTIONS` sections, counted over
every nesting level, and one with more is refused before any section is decoded
(issue 15: 200,000 one-mapping sections cost 55 s of CPU).

Lookups follow trace-mapping's `originalPositionFor` with its default
greatest-lower-bound bias, restricted to the generated line: an exact hit on a
column that several mappings share gives the first of them, a position between
mappings the last one before it, and a position before the first mapping of its
line gives nothing.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from symbolicator.errors import InvalidId, MalformedSourceMap
from symbolicator.sourcemaps.context import LineIndex
from symbolicator.sourcemaps.facebook import FunctionMap, function_maps, hermes_offsets
from symbolicator.sourcemaps.urls import join_source_root, resolve_joined
from symbolicator.sourcemaps.vlq import NONE, Segments, decode_mappings
from symbolicator.types import DebugId

_XSSI_PREFIX = b")]}'"
_MAX_SECTION_DEPTH = 8
MAX_SECTIONS = 10_000
_MAX_OFFSET = 2**31 - 1  # generated positions are int32 (vlq.py); JSON may hold up to 2^64
_U32 = 2**32


@dataclass(frozen=True, slots=True)
class Token:
    """The original position of a generated one.

    Lines and columns are 1-based; columns count UTF-16 code units.
    `generated_line`/`generated_column` are where the matched mapping starts.
    `function` is the enclosing original function (None when unknown or
    anonymous); `in_app` is False for sources on the map's ignore list.
    `function_from_original`: `function` comes from the original code (Metro's function maps, or the
    original source of inlined code), not from the minified file's scopes.
    """

    source: str
    source_index: int
    original_line: int
    original_column: int
    name: str | None
    function: str | None
    in_app: bool
    generated_line: int
    generated_column: int
    function_from_original: bool = False


@dataclass(frozen=True, slots=True)
class SourceMap:
    """A parsed map; `segments` and `keys` sorted by generated position.

    `raw_sources` are the map's `sources`; `joined_sources` have their
    `sourceRoot` prepended (content only: what the cache stores); `sources` are
    resolved against the `map_url` given to `parse` (see urls.py).
    `function_maps` are Metro's per-source function maps and `hermes_offsets` the
    Hermes compiler's function offsets per bytecode segment (see facebook.py).
    """

    file: str | None
    sources: tuple[str, ...]
    raw_sources: tuple[str | None, ...]
    joined_sources: tuple[str, ...]
    sources_content: tuple[str | None, ...]
    names: tuple[str, ...]
    ignored: frozenset[int]
    debug_id: str | None
    segments: Segments
    keys: np.ndarray
    function_maps: tuple[FunctionMap | None, ...] = ()
    hermes_offsets: dict[int, tuple[int, ...]] | None = None

    def lookup(self, line: int, column: int) -> Token | None:
        """Look up a 1-based line and 1-based UTF-16 column (no function names)."""
        if line < 1 or column < 1 or column > _U32 or line > _U32:
            return None
        i = find_segment(self.keys.data.cast("B").cast("Q"), line - 1, column - 1)
        if i < 0:
            return None
        s = self.segments
        src = int(s.src[i])
        if src == NONE:
            return None
        name = int(s.name[i])
        return Token(
            source=self.sources[src],
            source_index=src,
            original_line=int(s.src_line[i]) + 1,
            original_column=int(s.src_col[i]) + 1,
            name=self.names[name] if name != NONE else None,
            function=None,
            in_app=src not in self.ignored,
            generated_line=int(s.gen_line[i]) + 1,
            generated_column=int(s.gen_col[i]) + 1,
        )


def find_segment(keys: Sequence[int], line0: int, col0: int) -> int:
    """Index of the mapping answering (0-based line, 0-based column), or -1.

    `keys` are sorted `line << 32 | column`. Greatest lower bound on the same
    line; on an exact hit, the first of equal keys (as trace-mapping).
    """
    key = (line0 << 32) | col0
    i = bisect_right(keys, key) - 1
    if i < 0:
        return -1
    found = keys[i]
    if found >> 32 != line0:
        return -1
    if found == key:
        i = bisect_left(keys, key, 0, i)
    return i


class NameResolver:
    """`resolve(line0, col0) -> names entry | None`, the callback of `scopes.scope_names`.

    Positions are 0-based lines and 0-based UTF-16 columns in the minified file.
    The answer is the `names` entry of a mapping that starts exactly there (the
    first such mapping that has a name); when none starts there, that of the
    nearest mapping at or before it on the same line, as Symbolicator's
    `lookup_token` (Babel and Metro start a mapping at `function`, not at the
    name after it); else None.
    """

    def __init__(self, sourcemap: SourceMap) -> None:
        self._map = sourcemap
        self._keys = sourcemap.keys.data.cast("B").cast("Q")
        # Called once or more per scope of a bundle: memoryviews index to plain ints, where
        # numpy's scalar indexing costs several times as much.
        self._names = _ints(sourcemap.segments.name)

    def _exact(self, line0: int, col0: int) -> range:
        if line0 < 0 or col0 < 0 or line0 >= _U32 or col0 >= _U32:
            return range(0)
        key = (line0 << 32) | col0
        keys = self._keys
        first = bisect_left(keys, key)
        end = first
        # Keys are mostly unique: look one past before searching for the end of a run.
        if end < len(keys) and keys[end] == key:
            end += 1
            if end < len(keys) and keys[end] == key:
                end = bisect_right(keys, key, end)
        return range(first, end)

    def __call__(self, line0: int, col0: int) -> str | None:
        names = self._names
        at = self._exact(line0, col0)
        if not at and 0 <= line0 < _U32 and 0 <= col0 < _U32:
            # No mapping starts on the name token: the nearest one at or before it on the same line,
            # as Symbolicator's `lookup_token` (Babel/Metro maps start a mapping at `function`, not at its name).
            before = find_segment(self._keys, line0, col0)
            if before >= 0:
                key = self._keys[before]
                at = range(bisect_left(self._keys, key), before + 1)
        for i in at:
            name = names[i]
            if name != NONE:
                return self._map.names[name]
        return None


class OriginalLineResolver(NameResolver):
    """`original(line0, col0) -> (original line text, 0-based UTF-16 column) | None`.

    For the mapping starting exactly at a minified position, the text of the
    original line it points to (from `sourcesContent`), so the scopes module can
    read names minifiers dropped. None without a mapping or without content.
    """

    def __init__(self, sourcemap: SourceMap) -> None:
        super().__init__(sourcemap)
        self._lines: dict[int, LineIndex | None] = {}
        s = sourcemap.segments
        self._src, self._src_line, self._src_col = _ints(s.src), _ints(s.src_line), _ints(s.src_col)

    def __call__(self, line0: int, col0: int) -> tuple[str, int] | None:  # type: ignore[override]
        for i in self._exact(line0, col0):
            src = self._src[i]
            if src == NONE:
                continue
            if src not in self._lines:
                content = self._map.sources_content[src]
                self._lines[src] = LineIndex(content) if content is not None else None
            lines = self._lines[src]
            line = self._src_line[i]
            if lines is not None and line < len(lines):
                return lines[line], self._src_col[i]
            return None
        return None


def _ints(column: np.ndarray) -> Sequence[int]:
    """A column of `Segments` as a memoryview of plain ints (no copy when it is contiguous)."""
    return np.ascontiguousarray(column, dtype=np.int32).data.cast("B").cast("i")


def load_json(data: bytes | str) -> Any:
    """JSON of a map, after the `)]}'` XSSI line and a UTF-8 BOM are removed."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if raw.startswith(_XSSI_PREFIX):
        newline = raw.find(b"\n")
        raw = b"" if newline < 0 else raw[newline + 1 :]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedSourceMap(f"source map is not valid JSON: {exc}") from exc


def parse(data: bytes | str, map_url: str | None = None) -> SourceMap:
    """Parse and validate a regular or index map; `map_url` is its URL or path."""
    obj = load_json(data)
    if not isinstance(obj, dict):
        raise MalformedSourceMap(f"source map must be a JSON object, not {type(obj).__name__}")
    version = obj.get("version")
    if version != 3:
        raise MalformedSourceMap(f"unsupported source map version {version!r} (expected 3)")
    parts = _Parts()
    if "sections" in obj:
        _add_sections(obj, map_url, parts, 0, 0, _U32, _U32, 0)
    else:
        parts.add(_parse_regular(obj, map_url), 0, 0, _U32, _U32)
    return parts.finish(obj)


@dataclass(slots=True)
class _Regular:
    sources: list[str]
    raw_sources: list[str | None]
    joined: list[str]
    contents: list[str | None]
    names: list[str]
    ignored: list[int]
    segments: Segments
    function_maps: list[FunctionMap | None]


def _string_list(obj: dict[str, Any], key: str, allow_null: bool) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise MalformedSourceMap(f"`{key}` must be an array")
    for i, item in enumerate(value):
        if not (isinstance(item, str) or (allow_null and item is None)):
            raise MalformedSourceMap(f"`{key}[{i}]` must be a string, not {type(item).__name__}")
    return value


def _parse_regular(obj: dict[str, Any], map_url: str | None) -> _Regular:
    if "version" in obj and obj["version"] != 3:
        raise MalformedSourceMap(f"unsupported source map version {obj['version']!r} (expected 3)")
    mappings = obj.get("mappings")
    if not isinstance(mappings, str):
        raise MalformedSourceMap("`mappings` must be a string")
    raw_sources = _string_list(obj, "sources", allow_null=True)
    names = _string_list(obj, "names", allow_null=False)
    root = obj.get("sourceRoot")
    root = root if isinstance(root, str) else None
    contents = obj.get("sourcesContent")
    contents = [c if isinstance(c, str) else None for c in contents] if isinstance(contents, list) else []
    contents = (contents + [None] * len(raw_sources))[: len(raw_sources)]
    ignore = obj.get("ignoreList", obj.get("x_google_ignoreList"))
    ignored = [i for i in ignore if type(i) is int and 0 <= i < len(raw_sources)] if isinstance(ignore, list) else []
    segments = decode_mappings(mappings)
    _check_ranges(segments, len(raw_sources), len(names))
    joined = [join_source_root(s, root) for s in raw_sources]
    sources = [resolve_joined(j, map_url) for j in joined]
    return _Regular(sources, raw_sources, joined, contents, names, ignored, segments,
                    function_maps(obj, len(raw_sources)))


def _check_ranges(s: Segments, n_sources: int, n_names: int) -> None:
    for values, limit, what in ((s.src, n_sources, "source"), (s.name, n_names, "name")):
        if values.size and int(values.max()) >= limit:
            i = int(np.argmax(values >= limit))
            raise MalformedSourceMap(
                f"mapping at generated line {int(s.gen_line[i]) + 1}, column {int(s.gen_col[i])} "
                f"refers to {what} index {int(values[i])}, but the map has {limit} {what}s"
            )


def _offset(section: Any, index: int) -> tuple[int, int]:
    offset = section.get("offset") if isinstance(section, dict) else None
    line = offset.get("line") if isinstance(offset, dict) else None
    column = offset.get("column") if isinstance(offset, dict) else None
    if not (type(line) is int and type(column) is int and 0 <= line <= _MAX_OFFSET and 0 <= column <= _MAX_OFFSET):
        raise MalformedSourceMap(
            f"index map section {index} needs an `offset` with non-negative integer `line` and `column` below 2^31"
        )
    return line, column


def _add_sections(
    obj: dict[str, Any],
    map_url: str | None,
    parts: _Parts,
    line_off: int,
    col_off: int,
    stop_line: int,
    stop_col: int,
    depth: int,
) -> None:
    if depth > _MAX_SECTION_DEPTH:
        raise MalformedSourceMap("index map sections nested too deeply")
    sections = obj["sections"]
    if not isinstance(sections, list):
        raise MalformedSourceMap("`sections` must be an array")
    parts.section_count += len(sections)
    if parts.section_count > MAX_SECTIONS:
        raise MalformedSourceMap(f"index map has more than {MAX_SECTIONS} sections (counted over every nesting "
                                 f"level); at most {MAX_SECTIONS} are supported")
    offsets = [_offset(s, i) for i, s in enumerate(sections)]
    for i in range(1, len(offsets)):
        if offsets[i] < offsets[i - 1]:
            raise MalformedSourceMap(f"index map section {i} starts before section {i - 1}")
    for i, section in enumerate(sections):
        sl, sc = stop_line, stop_col
        if i + 1 < len(sections):
            nl, nc = offsets[i + 1]
            sl = min(stop_line, line_off + nl)
            sc = min(stop_col, col_off + nc) if sl == stop_line else col_off + nc
        sub = section.get("map")
        if sub is None and "url" in section:
            raise MalformedSourceMap(f"index map section {i} refers to a url; only embedded maps are supported")
        if not isinstance(sub, dict):
            raise MalformedSourceMap(f"index map section {i} has no embedded `map` object")
        line, column = offsets[i]
        if "sections" in sub:
            _add_sections(sub, map_url, parts, line_off + line, col_off + column, sl, sc, depth + 1)
        else:
            parts.add(_parse_regular(sub, map_url), line_off + line, col_off + column, sl, sc)


class _Parts:
    """Accumulates the (shifted, cut) regular maps an index map is made of."""

    def __init__(self) -> None:
        self.sources: list[str] = []
        self.raw_sources: list[str | None] = []
        self.joined: list[str] = []
        self.contents: list[str | None] = []
        self.names: list[str] = []
        self.ignored: list[int] = []
        self.function_maps: list[FunctionMap | None] = []
        self.arrays: list[tuple[np.ndarray, ...]] = []
        self.section_count = 0

    def add(self, part: _Regular, line_off: int, col_off: int, stop_line: int, stop_col: int) -> None:
        s = part.segments
        columns: tuple[np.ndarray, ...] = (s.gen_line, s.gen_col, s.src, s.src_line, s.src_col, s.name)
        if self.sources or self.names or line_off or col_off or stop_line < _U32:
            line = s.gen_line.astype(np.int64) + line_off
            col = np.where(s.gen_line == 0, s.gen_col.astype(np.int64) + col_off, s.gen_col)
            keep = (line < stop_line) | ((line == stop_line) & (col < stop_col))
            if line.size and max(int(line.max()), int(col.max())) >= 2**31:
                raise MalformedSourceMap("index map section offset puts a mapping beyond 2^31")
            src = np.where(s.src != NONE, s.src + len(self.sources), NONE)
            name = np.where(s.name != NONE, s.name + len(self.names), NONE)
            columns = tuple(a[keep].astype(np.int32) for a in (line, col, src, s.src_line, s.src_col, name))
        self.arrays.append(columns)
        self.ignored.extend(i + len(self.sources) for i in part.ignored)
        self.sources.extend(part.sources)
        self.raw_sources.extend(part.raw_sources)
        self.joined.extend(part.joined)
        self.contents.extend(part.contents)
        self.names.extend(part.names)
        self.function_maps.extend(part.function_maps)

    def finish(self, obj: dict[str, Any]) -> SourceMap:
        if len(self.arrays) == 1:
            columns = list(self.arrays[0])
        else:
            columns = [
                np.concatenate([a[k] for a in self.arrays]) if self.arrays else np.zeros(0, np.int32) for k in range(6)
            ]
        keys = (columns[0].astype(np.uint64) << np.uint64(32)) | columns[1].astype(np.uint64)
        if keys.size > 1 and not bool(np.all(keys[1:] >= keys[:-1])):
            order = np.argsort(keys, kind="stable")
            keys = keys[order]
            columns = [c[order] for c in columns]
        file = obj.get("file")
        return SourceMap(
            file=file if isinstance(file, str) else None,
            sources=tuple(self.sources),
            raw_sources=tuple(self.raw_sources),
            joined_sources=tuple(self.joined),
            sources_content=tuple(self.contents),
            names=tuple(self.names),
            ignored=frozenset(self.ignored),
            debug_id=_debug_id(obj),
            segments=Segments(*columns),
            keys=keys,
            function_maps=tuple(self.function_maps),
            hermes_offsets=hermes_offsets(obj),
        )


def _debug_id(obj: dict[str, Any]) -> str | None:
    value = obj.get("debugId", obj.get("debug_id"))
    if not isinstance(value, str):
        return None
    try:
        return str(DebugId.parse(value))
    except InvalidId:
        return None
