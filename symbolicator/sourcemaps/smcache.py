"""The sourcemap cache: a source map converted once into sorted arrays, looked up by mmap.

Parsing a 15 MB map takes a few hundred milliseconds; a lookup in its cache takes
about a microsecond and no JSON. The file is a header, a section table, and
8-byte-aligned little-endian sections::

    magic "SMCACHE\\0" | version u32 | section count u32 | file size u64
    section table: (offset u64, length u64) per section, in `_Section` order
    KEYS         u64[n]  generated (line0 << 32 | utf16_col0), sorted
    SRC, SRC_LINE, SRC_COL, NAME   u32[n] each (0-based; NONE = 0xffffffff)
    SCOPE_KEYS   u64[m]  boundaries of the innermost enclosing function, sorted
    SCOPE_NAMES  u32[m]  string id of its original name (NONE: top level or anonymous)
    STR_OFFSETS  u64[k+1], STR_BLOB utf-8 — the string table, strings deduplicated
    JOINED_SOURCES, RAW_SOURCES, CONTENTS  u32[s] string ids; FLAGS u8[s] (bit 0: ignored)
    NAMES        u32[names]
    META         u32[4]   string ids of `file` and `debug_id`; flags (bit 0: function names skipped,
                          bit 1: a Hermes map); the bytecode's size in bytes when it was known at
                          build time (else NONE)
    TOKEN_FUNCTIONS u32[n] per token, the string id of the function Metro's function map names at
                          its original position, else of the original function the token was
                          inlined from (inlining.py; "" for an anonymous one); NONE: the
                          enclosing minified scope names it
    HERMES_OFFSETS  u32[h] start offsets of the compiled functions, segment after segment
    HERMES_SEGMENTS u32[k] the bytecode segments the map has offsets for, ascending (the map's
                          line N + 1 is segment N); HERMES_SEGMENT_ENDS u32[k] where each
                          segment's offsets end in HERMES_OFFSETS

Scopes arrive as nested ranges (outer before inner) and are flattened at build
time into boundaries, so "which function encloses this position" is one bisect,
like the token lookup. The cache depends on the map's content only: sources are
stored joined with their `sourceRoot` and resolved against the map's URL when
the cache is opened, so one cache serves a map found at several URLs. Opening checks magic, version, file size and every
section's bounds and element count, so a truncated or foreign file is refused
with `CacheFormatError` and the caller rebuilds it.
"""

from __future__ import annotations

import enum
import logging
import mmap
import os
import struct
from bisect import bisect_right
from collections.abc import Sequence
from typing import Literal, Protocol

import numpy as np

from symbolicator.errors import CacheFormatError, OverBudget
from symbolicator.sourcemaps.context import Context, LineIndex, context_from_lines
from symbolicator.sourcemaps.facebook import check_bytecode, function_of
from symbolicator.sourcemaps.sourcemap import (
    NameResolver,
    OriginalLineResolver,
    SourceMap,
    Token,
    find_segment,
    parse,
)
from symbolicator.sourcemaps.urls import resolve_joined

# v1: tokens, scopes, strings, ignore flags; v2: names-skipped flag, naming-scheme sources as given;
# v3: Metro/Hermes; v4: one flags word; v5: per-token names of inlined original functions, every
# Hermes bytecode segment
SOURCEMAP_CACHE_VERSION = 5
MAGIC = b"SMCACHE\x00"
NONE = 0xFFFFFFFF
_HEADER = struct.Struct("<8sIIQ")
_ENTRY = struct.Struct("<QQ")
_IGNORED = 1
_NAMES_SKIPPED = 1
_HERMES = 2
log = logging.getLogger(__name__)


class _Section(enum.IntEnum):
    KEYS = 0
    SRC = 1
    SRC_LINE = 2
    SRC_COL = 3
    NAME = 4
    SCOPE_KEYS = 5
    SCOPE_NAMES = 6
    STR_OFFSETS = 7
    STR_BLOB = 8
    JOINED_SOURCES = 9
    RAW_SOURCES = 10
    CONTENTS = 11
    FLAGS = 12
    NAMES = 13
    META = 14
    TOKEN_FUNCTIONS = 15
    HERMES_OFFSETS = 16
    HERMES_SEGMENTS = 17
    HERMES_SEGMENT_ENDS = 18


_ITEM = {
    s: 8
    if s in (_Section.KEYS, _Section.SCOPE_KEYS, _Section.STR_OFFSETS)
    else 1
    if s in (_Section.STR_BLOB, _Section.FLAGS)
    else 4
    for s in _Section
}
_FORMAT: dict[int, Literal["Q", "I", "B"]] = {8: "Q", 4: "I", 1: "B"}
# `inlining.inlined_functions`' answer: names, and per token an index into them (-1: none).
Inlined = tuple[list[str], np.ndarray]


class ScopeLike(Protocol):
    """What `scopes.ScopeName` provides: 0-based, UTF-16 columns, end exclusive."""

    @property
    def start_line(self) -> int: ...
    @property
    def start_col(self) -> int: ...
    @property
    def end_line(self) -> int: ...
    @property
    def end_col(self) -> int: ...
    @property
    def name(self) -> str | None: ...


class _Strings:
    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.items: list[bytes] = []

    def add(self, text: str | None) -> int:
        if text is None:
            return NONE
        sid = self.ids.get(text)
        if sid is None:
            sid = self.ids[text] = len(self.items)
            self.items.append(text.encode("utf-8", "surrogatepass"))
        return sid


def flatten_ranges(scopes: Sequence[ScopeLike]) -> list[tuple[int, int]]:
    """Nested scopes → sorted (key, index of the innermost scope, -1 for none) boundaries; each
    holds until the next.

    Plain int tuples are built once and sorted (nearly free: scopes arrive sorted), so the
    sweep below touches no attributes: this runs over every scope of a bundle.
    """
    ordered = sorted(((s.start_line << 32) | s.start_col, -((s.end_line << 32) | s.end_col), i)
                     for i, s in enumerate(scopes))
    out: list[tuple[int, int]] = []
    stack: list[tuple[int, int]] = []
    append = out.append

    def emit(at: int, index: int) -> None:
        if out and out[-1][0] == at:
            out[-1] = (at, index)
        else:
            append((at, index))

    for start, neg_end, i in ordered:
        end = -neg_end
        while stack and stack[-1][0] <= start:
            closed_end = stack.pop()[0]
            emit(closed_end, stack[-1][1] if stack else -1)
        if end <= start:
            continue
        emit(start, i)
        stack.append((min(end, stack[-1][0]) if stack else end, i))
    while stack:
        closed_end = stack.pop()[0]
        emit(closed_end, stack[-1][1] if stack else -1)
    return out


def flatten_scopes(scopes: Sequence[ScopeLike],
                   flat: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, str | None]]:
    """Nested scopes → sorted (key, innermost name) boundaries; each holds until the next.
    `flat`: `flatten_ranges(scopes)`, when the caller has it."""
    return [(key, scopes[i].name if i >= 0 else None)
            for key, i in (flatten_ranges(scopes) if flat is None else flat)]


def _token_functions(sm: SourceMap, strings: _Strings, inlined: Inlined | None) -> np.ndarray:
    """Per token, the string id of the name Metro's function map gives its original position, else
    of the original function it was inlined from (NONE: neither)."""
    out = np.full(len(sm.keys), NONE, dtype="<u4")
    if inlined is not None:
        names, index = inlined
        ids = np.array([strings.add(n) for n in names] + [NONE], dtype="<u4")
        out[:] = ids[index]  # index -1 (no override) picks the NONE sentinel
    seg = sm.segments
    for src, fmap in enumerate(sm.function_maps):
        if fmap is None or not fmap.keys:
            continue
        at = np.flatnonzero(seg.src == src)
        if not at.size:
            continue
        wanted = ((seg.src_line[at].astype(np.uint64) + np.uint64(1)) << np.uint64(32)) | seg.src_col[at].astype(
            np.uint64)
        index = np.searchsorted(np.array(fmap.keys, dtype=np.uint64), wanted, side="right") - 1
        ids = np.array([strings.add(n) for n in fmap.names] + [NONE], dtype="<u4")
        out[at] = ids[index]  # index -1 (before the first range) picks the NONE sentinel
    return out


def _hermes_sections(offsets: dict[int, tuple[int, ...]] | None) -> dict[_Section, np.ndarray]:
    segments = sorted((offsets or {}).items())
    flat = [o for _, starts in segments for o in starts]
    return {_Section.HERMES_OFFSETS: np.array(flat, dtype="<u4"),
            _Section.HERMES_SEGMENTS: np.array([k for k, _ in segments], dtype="<u4"),
            _Section.HERMES_SEGMENT_ENDS: np.cumsum([len(v) for _, v in segments], dtype=np.int64).astype("<u4")}


def build_from_map(sm: SourceMap, scope_names: Sequence[ScopeLike] = (), bytecode_size: int | None = None, *,
                   names_skipped: bool = False, inlined: Inlined | None = None,
                   flat: Sequence[tuple[int, int]] | None = None) -> bytearray:
    """Serialize a parsed map (and already-computed scopes) into cache bytes.

    `inlined` is `inlining.inlined_functions`' answer: per token, the original function to name
    it by where the minifier inlined it (Metro's function maps still come first). `flat` is
    `flatten_ranges(scope_names)` when the caller has it already.

    `names_skipped` records that the function-name pass was skipped (over its budget), so frames
    can say why they have no original function name.

    Sections are copied straight into one preallocated buffer: the cache of a
    15 MB map is ~25 MB, and building it through intermediate `bytes` and a
    join would hold it three times over.
    """
    strings = _Strings()
    seg = sm.segments
    boundaries = flatten_scopes(scope_names, flat)
    arrays: dict[_Section, np.ndarray] = {
        _Section.KEYS: sm.keys.astype("<u8", copy=False),
        _Section.SRC: seg.src.astype("<i4", copy=False),
        _Section.SRC_LINE: seg.src_line.astype("<i4", copy=False),
        _Section.SRC_COL: seg.src_col.astype("<i4", copy=False),
        _Section.NAME: seg.name.astype("<i4", copy=False),
        _Section.SCOPE_KEYS: np.array([b[0] for b in boundaries], dtype="<u8"),
        _Section.SCOPE_NAMES: np.array([strings.add(b[1]) for b in boundaries], dtype="<u4"),
        _Section.JOINED_SOURCES: np.array([strings.add(s) for s in sm.joined_sources], dtype="<u4"),
        _Section.RAW_SOURCES: np.array([strings.add(s) for s in sm.raw_sources], dtype="<u4"),
        _Section.CONTENTS: np.array([strings.add(c) for c in sm.sources_content], dtype="<u4"),
        _Section.FLAGS: np.array([_IGNORED if i in sm.ignored else 0 for i in range(len(sm.sources))], dtype=np.uint8),
        _Section.NAMES: np.array([strings.add(n) for n in sm.names], dtype="<u4"),
        _Section.META: np.array([strings.add(sm.file), strings.add(sm.debug_id),
                                 (_NAMES_SKIPPED if names_skipped else 0)
                                 | (_HERMES if sm.hermes_offsets is not None else 0),
                                 NONE if bytecode_size is None else min(bytecode_size, NONE - 1)], dtype="<u4"),
        _Section.TOKEN_FUNCTIONS: _token_functions(sm, strings, inlined),
        **_hermes_sections(sm.hermes_offsets),
    }
    offsets = np.zeros(len(strings.items) + 1, dtype="<u8")
    np.cumsum(np.fromiter((len(b) for b in strings.items), dtype=np.uint64, count=len(strings.items)), out=offsets[1:])
    arrays[_Section.STR_OFFSETS] = offsets
    sizes = {s: arrays[s].nbytes if s in arrays else int(offsets[-1]) for s in _Section}

    pos = _align(_HEADER.size + _ENTRY.size * len(_Section))
    placed: dict[_Section, int] = {}
    for s in _Section:
        placed[s] = pos
        pos += _align(sizes[s])
    out = bytearray(pos)
    _HEADER.pack_into(out, 0, MAGIC, SOURCEMAP_CACHE_VERSION, len(_Section), pos)
    for s in _Section:
        _ENTRY.pack_into(out, _HEADER.size + _ENTRY.size * s, placed[s], sizes[s])
        if s == _Section.STR_BLOB:
            at = placed[s]
            for item in strings.items:
                out[at : at + len(item)] = item
                at += len(item)
        elif sizes[s]:
            target = np.frombuffer(out, dtype=np.uint8, count=sizes[s], offset=placed[s])
            target[:] = arrays[s].view(np.uint8)
    return out


def build(map_bytes: bytes, *, scope_names: Sequence[ScopeLike] = ()) -> bytearray:
    """Parse a map and convert it; raises MalformedSourceMap for a broken map."""
    return build_from_map(parse(map_bytes), scope_names)


def build_from_sources(map_bytes: bytes, minified_source: str | bytes | None, *, with_scopes: bool = True,
                       names_max_memory: int | None = None, bytecode: bytes | None = None) -> bytearray:
    """The full conversion: parse, find original function names in the minified source, serialize.

    Scopes need the minified source; without it (or with `with_scopes=False`)
    the cache still answers positions, with `function` None unless the map carries
    Metro's function maps. The minified source is parsed first and its syntax tree
    freed before the map is parsed: the two largest structures of the conversion are
    never in memory together. `bytecode` is a Hermes bytecode bundle (no scopes to
    parse): its map must carry function offsets inside it (facebook.py).

    `names_max_memory` bounds the function-name pass (`scopes.collect_scopes`): over it, or
    when the process runs out of memory during the pass (a worker's memory limit), positions
    are converted without names and the cache is flagged (`SmCache.names_skipped`).
    """
    if bytecode is not None:
        sm = parse(map_bytes)
        check_bytecode(sm.hermes_offsets, bytecode)
        return build_from_map(sm, (), len(bytecode))
    if not with_scopes or minified_source is None:
        return build_from_map(parse(map_bytes), ())
    from symbolicator.sourcemaps.scopes import collect_scopes, resolve_scopes

    try:
        pending = collect_scopes(minified_source, names_max_memory)
    except (OverBudget, MemoryError) as exc:
        log.warning("function names skipped: %s", exc or "out of memory")
        return build_from_map(parse(map_bytes), (), names_skipped=True)
    from symbolicator.sourcemaps.inlining import inlined_functions

    sm = parse(map_bytes)
    scopes = resolve_scopes(pending, NameResolver(sm), OriginalLineResolver(sm))
    del pending
    flat = flatten_ranges(scopes)
    return build_from_map(sm, scopes, inlined=inlined_functions(sm, scopes, names_max_memory, flat=flat), flat=flat)


def write(path: str | os.PathLike[str], data: bytes | bytearray) -> None:
    """Write cache bytes atomically (temporary file + rename): readers never see half a file."""
    tmp = f"{os.fspath(path)}.tmp{os.getpid()}"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _align(n: int) -> int:
    return (n + 7) & ~7


class SmCache:
    """A memory-mapped (or in-memory) sourcemap cache. Not thread-safe to close while in use."""

    def __init__(
        self, buffer: bytes | bytearray | mmap.mmap, owner: mmap.mmap | None = None, map_url: str | None = None
    ) -> None:
        self._owner = owner
        self._buf = memoryview(buffer)
        try:
            self._views = self._validate()
        except CacheFormatError:
            self._buf.release()
            raise
        v = self._views
        self._keys = v[_Section.KEYS]
        self._src, self._line, self._col, self._name = (
            v[_Section.SRC],
            v[_Section.SRC_LINE],
            v[_Section.SRC_COL],
            v[_Section.NAME],
        )
        self._scope_keys, self._scope_names = v[_Section.SCOPE_KEYS], v[_Section.SCOPE_NAMES]
        self._str_offsets, self._blob = v[_Section.STR_OFFSETS], v[_Section.STR_BLOB]
        self._flags = v[_Section.FLAGS]
        self._strings: dict[int, str] = {}
        self._lines: dict[int, LineIndex] = {}
        self._map_url = map_url
        self._resolved: dict[int, str] = {}
        self.file: str | None = self._str(v[_Section.META][0])
        self.debug_id: str | None = self._str(v[_Section.META][1])
        flags = int(v[_Section.META][2])
        self.names_skipped = bool(flags & _NAMES_SKIPPED)
        self.is_hermes = bool(flags & _HERMES)
        self.bytecode_size: int | None = None if v[_Section.META][3] == NONE else int(v[_Section.META][3])
        self._token_functions = v[_Section.TOKEN_FUNCTIONS]
        self._hermes_offsets = v[_Section.HERMES_OFFSETS]
        self._hermes_segments = v[_Section.HERMES_SEGMENTS]
        self._hermes_ends = v[_Section.HERMES_SEGMENT_ENDS]

    @classmethod
    def open(cls, path: str | os.PathLike[str], map_url: str | None = None) -> SmCache:
        """Memory-map a cache file; CacheFormatError when it is not a valid cache.

        `map_url` is the map's own URL or path: sources are resolved against it.
        """
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size == 0:
                raise CacheFormatError(f"sourcemap cache {os.fspath(path)!r} is empty")
            mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            return cls(mm, owner=mm, map_url=map_url)
        except CacheFormatError:
            mm.close()
            raise

    @classmethod
    def from_bytes(cls, data: bytes | bytearray, map_url: str | None = None) -> SmCache:
        return cls(data, map_url=map_url)

    def close(self) -> None:
        """Release the views and the mapping; the cache is unusable afterwards."""
        for view in self._views.values():
            view.release()
        self._views.clear()
        self._buf.release()
        if self._owner is not None:
            self._owner.close()

    def __enter__(self) -> SmCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _validate(self) -> dict[_Section, memoryview]:
        """Check everything from the header and section table before making any view.

        No view is exported until the checks pass, so a refused mmap can be closed.
        """
        buf = self._buf
        if len(buf) < _HEADER.size + _ENTRY.size * len(_Section):
            raise CacheFormatError("sourcemap cache is truncated (no header)")
        magic, version, count, size = _HEADER.unpack_from(buf, 0)
        if magic != MAGIC:
            raise CacheFormatError("not a sourcemap cache (bad magic)")
        if version != SOURCEMAP_CACHE_VERSION:
            raise CacheFormatError(f"sourcemap cache version {version}, expected {SOURCEMAP_CACHE_VERSION}")
        if count != len(_Section) or size != len(buf):
            raise CacheFormatError(
                f"sourcemap cache is truncated or corrupt ({len(buf)} bytes, header says {size}, {count} sections)"
            )
        spans: dict[_Section, tuple[int, int]] = {}
        for s in _Section:
            offset, length = _ENTRY.unpack_from(buf, _HEADER.size + _ENTRY.size * s)
            if offset % 8 or offset + length > size or length % _ITEM[s]:
                raise CacheFormatError(f"sourcemap cache section {s.name} is out of bounds")
            spans[s] = (offset, length // _ITEM[s])
        n = {s: count for s, (_, count) in spans.items()}
        token_arrays = (_Section.SRC, _Section.SRC_LINE, _Section.SRC_COL, _Section.NAME, _Section.TOKEN_FUNCTIONS)
        if any(n[s] != n[_Section.KEYS] for s in token_arrays):
            raise CacheFormatError("sourcemap cache token arrays differ in length")
        if any(n[s] != n[_Section.JOINED_SOURCES] for s in (_Section.RAW_SOURCES, _Section.CONTENTS, _Section.FLAGS)):
            raise CacheFormatError("sourcemap cache source arrays differ in length")
        if n[_Section.SCOPE_KEYS] != n[_Section.SCOPE_NAMES] or n[_Section.META] != 4 or n[_Section.STR_OFFSETS] == 0:
            raise CacheFormatError("sourcemap cache scope, meta or string arrays are corrupt")
        if n[_Section.HERMES_SEGMENTS] != n[_Section.HERMES_SEGMENT_ENDS]:
            raise CacheFormatError("sourcemap cache Hermes segment arrays differ in length")
        offsets_at, offsets_count = spans[_Section.STR_OFFSETS]
        (blob_size,) = struct.unpack_from("<Q", buf, offsets_at + 8 * (offsets_count - 1))
        if blob_size != n[_Section.STR_BLOB]:
            raise CacheFormatError("sourcemap cache string table is corrupt")
        return {s: buf[o : o + c * _ITEM[s]].cast(_FORMAT[_ITEM[s]]) for s, (o, c) in spans.items()}

    def _str(self, sid: int) -> str | None:
        if sid == NONE:
            return None
        text = self._strings.get(sid)
        if text is None:
            if sid + 1 >= len(self._str_offsets):
                raise CacheFormatError(f"sourcemap cache refers to missing string {sid}")
            start, end = self._str_offsets[sid], self._str_offsets[sid + 1]
            if not start <= end <= len(self._blob):
                raise CacheFormatError(f"sourcemap cache string {sid} is out of bounds")
            text = self._strings[sid] = bytes(self._blob[start:end]).decode("utf-8", "surrogatepass")
        return text

    def __len__(self) -> int:
        return len(self._keys)

    @property
    def source_count(self) -> int:
        return len(self._views[_Section.JOINED_SOURCES])

    def source(self, index: int) -> str:
        """`sources[index]` resolved against the map URL; resolved lazily (maps list thousands)."""
        name = self._resolved.get(index)
        if name is None:
            joined = self._str(self._views[_Section.JOINED_SOURCES][index]) or ""
            name = self._resolved[index] = resolve_joined(joined, self._map_url)
        return name

    @property
    def sources(self) -> tuple[str, ...]:
        return tuple(self.source(i) for i in range(self.source_count))

    @property
    def raw_sources(self) -> tuple[str | None, ...]:
        return tuple(self._str(i) for i in self._views[_Section.RAW_SOURCES])

    def lookup(self, line: int, column: int) -> Token | None:
        """The original position of 1-based `line`, 1-based UTF-16 `column`, or None.

        None for line/column < 1, positions past 2^32, positions before the first
        mapping of their line, and mappings without a source.
        """
        if line < 1 or column < 1 or line > 1 << 32 or column > 1 << 32:
            return None
        i = find_segment(self._keys, line - 1, column - 1)
        if i < 0:
            return None
        src = self._src[i]
        if src == NONE or src >= self.source_count:
            return None
        key = self._keys[i]
        if self.is_hermes and not self._in_same_function(line, column - 1, key & 0xFFFFFFFF):
            return None
        function = self._str(self._token_functions[i])
        from_original = function is not None
        if function is None:
            function = self.function_at(line, column)
        return Token(
            source=self.source(src),
            source_index=src,
            original_line=self._line[i] + 1,
            original_column=self._col[i] + 1,
            name=self._name_of(self._name[i]),
            function=function or None,
            in_app=not self._flags[src] & _IGNORED,
            generated_line=(key >> 32) + 1,
            generated_column=(key & 0xFFFFFFFF) + 1,
            function_from_original=from_original,
        )

    def _in_same_function(self, line: int, offset: int, mapped_offset: int) -> bool:
        """A Hermes frame (line = bytecode segment + 1, column = bytecode offset): inside a compiled function
        of its segment (and inside the bytecode, for segment 0, the bundle's own, when its size is known), and
        the mapping found for it starts in that same function (else it would describe another one)."""
        segment = line - 1
        if segment == 0 and self.bytecode_size is not None and offset >= self.bytecode_size:
            return False
        at = bisect_right(self._hermes_segments, segment) - 1
        if at < 0 or self._hermes_segments[at] != segment:
            return False
        begin = int(self._hermes_ends[at - 1]) if at else 0
        start = function_of(self._hermes_offsets[begin : int(self._hermes_ends[at])], offset)
        return start >= 0 and mapped_offset >= start

    def _name_of(self, index: int) -> str | None:
        names = self._views[_Section.NAMES]
        return self._str(names[index]) if index != NONE and index < len(names) else None

    def function_at(self, line: int, column: int) -> str | None:
        """Original name of the function enclosing 1-based `line`/`column`, if known."""
        i = bisect_right(self._scope_keys, ((line - 1) << 32) | (column - 1)) - 1
        return self._str(self._scope_names[i]) if i >= 0 else None

    def names_from_fetched_original(self, token: Token) -> bool:
        """Whether `token`'s function should come from its original source fetched apart from the map
        (docs/javascript.md, step 2): the map carries no text for that source, nothing closer to the
        original (Metro's function maps) named it, and the name pass was not skipped."""
        return (not token.function_from_original and not self.names_skipped
                and self.source_content(token.source_index) is None)

    def source_content(self, source_index: int) -> str | None:
        contents = self._views[_Section.CONTENTS]
        if not 0 <= source_index < len(contents):
            return None
        return self._str(contents[source_index])

    def source_context(self, source_index: int, line: int, n: int = 5) -> Context | None:
        """Up to n lines around 1-based `line` of a source's embedded content, or None."""
        lines = self._lines.get(source_index)
        if lines is None:
            content = self.source_content(source_index)
            if content is None:
                return None
            lines = self._lines[source_index] = LineIndex(content)
        return context_from_lines(lines, line, n)
