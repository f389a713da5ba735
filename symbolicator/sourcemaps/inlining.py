"""Function names from the scopes of the ORIGINAL sources, for inlined and moved code.

Why: minifiers (terser, and so rollup's and webpack's production builds) inline small functions
into their callers and move code (`o.f = function…` becomes `const a = function…`). The scope
that encloses a frame in the *minified* file is then the caller, or a binding that no longer
says whose function it is, and naming frames from minified scopes (`scopes.py`) names that. The
function that really holds the code is the one enclosing the frame's *original* position in the
original source, which the map usually carries (`sourcesContent`).

So, at conversion time, the sources the minifier moved code out of (`suspect_sources`, a cheap
pass over the mappings) are parsed once each (tree-sitter; TypeScript's grammar for TypeScript
sources, `scopes.original_scopes`), and each mapping into them gets the original function
enclosing its original position, stored in the sourcemap cache's per-token function section (a
lookup stays one bisect). Parsing every source would name every position by its original
function, but costs a parse of all the original code (seconds on a large bundle, where the
≤ 3× `symbolic` conversion bound leaves none); the sources without moved code keep the minified
scopes' names, which are right there. Which name wins in a parsed source (`Rule`):

- `always` (what the service does): the original function wherever the original position lies
  in one; the minified scope's name only where it lies in none (top-level code), where the
  source has no content, or where its parse is over budget;
- `inlined`: the original function only where inlining shows, i.e. where it differs from the
  original function the minified scope itself comes from (the one enclosing the original
  position of the scope's first mapping). Kept to measure against: on real V8 traces of
  terser-minified rollup and webpack output it leaves 2.6 % of frames wrong (code terser moved
  rather than inlined, `#private` names it mangled), `always` none (docs/javascript.md).

A source the map carries no text for is named later, from the original fetched apart from the map
(`original_names.py`, `service/js/fetched_names.py`), by the same parse.

Each original source is parsed within the function-name pass's memory budget
(`limits.js_names_max_memory_bytes`), one at a time (each tree is freed before the next parse);
a source over it keeps the minified-scope naming.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Literal

import numpy as np

from symbolicator.errors import OverBudget
from symbolicator.sourcemaps.scopes import ScopeName, original_scopes
from symbolicator.sourcemaps.smcache import ScopeLike, flatten_ranges
from symbolicator.sourcemaps.sourcemap import SourceMap

log = logging.getLogger(__name__)

Rule = Literal["always", "inlined"]
NO_OVERRIDE = -1
# An override to "no name": the original code is an anonymous function, inlined.
ANONYMOUS = ""


Flat = Sequence[tuple[int, int]]


def _innermost(scopes: Sequence[ScopeLike], keys: np.ndarray, flat: Flat | None = None) -> np.ndarray:
    """For each of `keys` (line0 << 32 | utf16 col0, in any order), the index of the innermost scope
    holding it (-1: none). `flat`: `flatten_ranges(scopes)`, when the caller has it."""
    if flat is None:
        flat = flatten_ranges(scopes)
    if not flat:
        return np.full(len(keys), -1, dtype=np.int64)
    bounds = np.fromiter((b[0] for b in flat), dtype=np.uint64, count=len(flat))
    ids = np.fromiter((b[1] for b in flat), dtype=np.int64, count=len(flat))
    at = np.searchsorted(bounds, keys, side="right") - 1
    return np.where(at >= 0, ids[np.maximum(at, 0)], -1)


def _original_keys(sm: SourceMap, at: np.ndarray) -> np.ndarray:
    seg = sm.segments
    keys: np.ndarray = (seg.src_line[at].astype(np.uint64) << np.uint64(32)) | seg.src_col[at].astype(np.uint64)
    return keys


def _scope_origins(sm: SourceMap, minified: Sequence[ScopeLike]) -> np.ndarray:
    """For each minified scope, the mapping at or after its start on its line (-1: none): the
    scope's first token, which lies in the original function the scope comes from."""
    n = len(sm.keys)
    starts = np.array([(m.start_line << 32) | m.start_col for m in minified], dtype=np.uint64)
    first = np.searchsorted(sm.keys, starts, side="left")
    inside = first < n
    first = np.minimum(first, n - 1)
    same_line = inside & ((sm.keys[first] >> np.uint64(32)) == (starts >> np.uint64(32)))
    return np.where(same_line, first, -1)


def suspect_sources(sm: SourceMap, minified: Sequence[ScopeLike], flat: Flat | None = None) -> set[int]:
    """Sources some of whose code sits in a minified scope that does not come from its function:
    a mapping whose original position is in another source than the scope's first mapping, or
    on an earlier line of the same one (code placed before its function cannot be in it).

    Cheap (no parse) and one-sided: code inlined from further down the same file is not caught.
    Only these sources are parsed; elsewhere the minified scopes name the frames, as before.
    """
    n = len(sm.keys)
    if not n or not len(minified):
        return set()
    seg = sm.segments
    src = seg.src.astype(np.int64)
    line = seg.src_line.astype(np.int64)
    first = _scope_origins(sm, minified)
    enclosing = _innermost(minified, sm.keys, flat)
    head = np.where(enclosing >= 0, first[np.maximum(enclosing, 0)], -1)
    at = np.maximum(head, 0)
    count = len(sm.sources_content)
    known = (head >= 0) & (src >= 0) & (src < count) & (src[at] >= 0) & (src[at] < count)
    moved = known & ((src != src[at]) | (line < line[at]))
    return set(np.unique(src[moved]).tolist())


def inlined_functions(sm: SourceMap, minified: Sequence[ScopeLike], max_memory: int | None = None,
                      rule: Rule = "always", sources: set[int] | None = None,
                      flat: Flat | None = None) -> tuple[list[str], np.ndarray]:
    """Per mapping of `sm`, the original function to name it by (`rule`: see the module docstring).

    Returns (names, index): `index[i]` is a position in `names` for mapping i, or NO_OVERRIDE
    where the minified scope's name stands; a name is ANONYMOUS for an anonymous function.
    `minified` are the minified file's scopes as `scopes.scope_names` gives them. `sources`
    limits the parse to those source indices (default: `suspect_sources`). `flat` is
    `smcache.flatten_ranges(minified)` when the caller has it (it is the costly part of the filter).
    """
    n = len(sm.keys)
    index = np.full(n, NO_OVERRIDE, dtype=np.int64)
    names: list[str] = []
    if not n:
        return names, index
    if sources is None:
        sources = suspect_sources(sm, minified, flat)
    src = sm.segments.src.astype(np.int64)
    # The original function of each mapping, as a global id over all parsed sources.
    orig = np.full(n, -1, dtype=np.int64)
    for s in sorted(sources):
        text = sm.sources_content[s] if 0 <= s < len(sm.sources_content) else None
        if not text:
            continue
        try:
            scopes = original_scopes(sm.joined_sources[s], text, max_memory)
        except (OverBudget, MemoryError) as exc:
            log.warning("original function names of %s skipped: %s", sm.joined_sources[s], exc or "out of memory")
            continue
        if not scopes:
            continue
        at = np.flatnonzero(src == s)
        inner = _innermost(scopes, _original_keys(sm, at))
        named = inner >= 0
        orig[at[named]] = inner[named] + len(names)
        names.extend(scope_label(scope) for scope in scopes)
    if rule == "always" or not len(minified):
        return names, orig
    first = _scope_origins(sm, minified)
    scope_orig = np.where(first >= 0, orig[np.maximum(first, 0)], -1)
    enclosing = _innermost(minified, sm.keys, flat)
    stands_for = np.where(enclosing >= 0, scope_orig[np.maximum(enclosing, 0)], -1)
    inlined = (orig >= 0) & (orig != stands_for)
    index[inlined] = orig[inlined]
    return names, index


def scope_label(scope: ScopeName) -> str:
    """How an original function names a frame: its name, ANONYMOUS for an anonymous one."""
    return scope.name if scope.name is not None else ANONYMOUS
