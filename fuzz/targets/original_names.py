"""`original_names`: the original sources of a map parsed for function names (`sourcemaps/inlining.py`).

The service parses an original source only where the minifier moved code out of it, which random
maps rarely show, so the `sourcemap` target seldom gets there. Here every source with content is
parsed (tree-sitter's JavaScript, TypeScript or TSX grammar, chosen by the source's name), under the
service's default name budget, and the per-mapping names go through the cache build and lookups.
Inputs are the `sourcemap` target's (map, NUL, minified source): `sourcesContent` drawn from the
fixtures' JavaScript and TypeScript originals and from arbitrary text, sources named `.ts` among
others.

Checks beyond the crash contract: every mapping's name index points into the names; a cache lookup
at each probed mapping answers that mapping's original function where one was found (an anonymous
one: no name; none: the minified scope's name stands).

The same sources also go through the path of an original fetched apart from its map
(`sourcemaps/original_names.py`: the worker job's `build`, then `OriginalNames` opened from the
bytes), **differential** against the pass above: at every probed mapping into a parsed source, the
converted original must answer the function `inlined_functions` gave it, or none where it gave
none. Inputs starting with that cache's magic are opened as cache bytes (damaged headers, sizes
and name tables must be refused with `CacheFormatError`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson

from fuzz.contract import Violation
from fuzz.targets.sourcemap import MAX_PROBED, NAMES_BUDGET, mutate, seeds, split
from fuzz.targets.sourcemap import inputs as _inputs
from symbolicator.errors import OverBudget
from symbolicator.sourcemaps import original_names
from symbolicator.sourcemaps.inlining import NO_OVERRIDE, inlined_functions
from symbolicator.sourcemaps.scopes import collect_scopes, resolve_scopes
from symbolicator.sourcemaps.smcache import SmCache, build_from_map
from symbolicator.sourcemaps.sourcemap import NameResolver, OriginalLineResolver, SourceMap, parse

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

__all__ = ["inputs", "mutate", "run", "seeds"]
_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"


def run(data: bytes) -> None:
    if data.startswith(original_names.MAGIC):
        opened = original_names.OriginalNames(data)
        for line, col in ((1, 1), (2, 5), (1 << 32, 1), (0, 0), (7, 1 << 31)):
            opened.function_at(line, col)
        return
    map_bytes, minified = split(data)
    sm = parse(map_bytes)
    try:
        pending = collect_scopes(minified or b"", NAMES_BUDGET)
    except OverBudget:
        pending = []
    scopes = resolve_scopes(pending, NameResolver(sm), OriginalLineResolver(sm))
    names, index = inlined_functions(sm, scopes, NAMES_BUDGET, sources=set(range(len(sm.sources))))
    if len(index) != len(sm.keys) or ((index != NO_OVERRIDE) & ((index < 0) | (index >= len(names)))).any():
        raise Violation("wrong", f"name indices out of range ({len(names)} names)")
    _fetched_agree(sm, names, index)
    cache = SmCache.from_bytes(build_from_map(sm, scopes, inlined=(names, index)))
    if any(m is not None for m in sm.function_maps):
        return  # Metro's function maps name first
    seg = sm.segments
    for i in range(min(len(sm.keys), MAX_PROBED)):
        if int(index[i]) == NO_OVERRIDE or int(np.searchsorted(sm.keys, sm.keys[i], side="left")) != i:
            continue  # the minified scope names it, or an earlier mapping at the same position answers
        line, col = int(seg.gen_line[i]) + 1, int(seg.gen_col[i]) + 1
        token = cache.lookup(line, col)
        if token is None:
            continue  # a Hermes map answers only offsets inside a compiled function
        want = names[int(index[i])] or None
        if token.function != want:
            raise Violation("wrong", f"mapping {i} at {line}:{col}: function {token.function!r}, original {want!r}")


def _fetched_agree(sm: SourceMap, names: list[str], index: np.ndarray) -> None:
    """Each source's text converted as a fetched original answers what `inlined_functions` did."""
    seg = sm.segments
    src = seg.src.astype(np.int64)
    for s, text in enumerate(sm.sources_content):
        try:
            raw = text.encode("utf-8") if text else b""
        except UnicodeEncodeError:
            continue  # a lone surrogate: a fetched file is bytes, it cannot hold one
        if not raw:
            continue
        fetched = original_names.OriginalNames(original_names.build(sm.joined_sources[s], raw, NAMES_BUDGET))
        for i in np.flatnonzero(src == s)[:MAX_PROBED]:
            want = names[int(index[i])] if int(index[i]) != NO_OVERRIDE else None
            got = fetched.function_at(int(seg.src_line[i]) + 1, int(seg.src_col[i]) + 1)
            if got != want:
                raise Violation("wrong", f"source {s} mapping {i}: fetched original {got!r}, sourcesContent {want!r}")


def inputs() -> SearchStrategy[bytes]:
    """Mostly maps made for this target: sources named by every grammar's extensions, their
    content a fixture original (JavaScript or TypeScript), a cut of one, or text of code-ish
    characters; the minified file a fixture bundle or text. Now and then the `sourcemap` target's
    inputs (maps of every shape)."""
    from hypothesis import strategies as st

    from fuzz.strategies import mappings, rarely

    originals = sorted(p.read_text() for folder in ("js/src", "js_scopes/src", "rn/segments", "rn/src")
                       for ext in ("*.js", "*.ts") for p in (_FIXTURES / folder).rglob(ext))
    bundles = sorted(p.read_bytes() for p in (_FIXTURES / "js_scopes" / "out").glob("*/app.min.js"))
    code = "abcxyz(){}[]<>=:;,.?!#@`'\"\n /*+-|&$_0123456789"
    words = st.sampled_from(["function ", "class ", "=>", "async ", "abstract ", "get ", "static ", "enum ",
                             "namespace ", "interface ", "<T>", ": number", " as any", "declare "])
    text = st.lists(st.one_of(st.text(alphabet=code, max_size=12), words), max_size=40).map("".join)
    cut = st.tuples(st.sampled_from(originals), st.floats(0, 1)).map(lambda p: p[0][: int(len(p[0]) * p[1])])
    content = st.one_of(st.sampled_from(originals), cut, text, st.none())
    name = st.sampled_from(["src/a.ts", "b.tsx", "c.js", "d.mts", "e.cts", "f.jsx", "webpack:///./g.ts?x",
                            "h.d.ts", "i", "J.TS"])
    minified = st.one_of(st.sampled_from(bundles), text.map(str.encode))

    @st.composite
    def made(draw: st.DrawFn) -> bytes:
        n = draw(st.integers(1, 4))
        sources = draw(st.lists(name, min_size=n, max_size=n))
        body = {"version": 3, "sources": sources, "names": ["f", "Cart"], "mappings": draw(mappings(n, 2, 40)),
                "sourcesContent": draw(st.lists(content, min_size=n, max_size=n))}
        return orjson.dumps(body) + b"\0" + draw(minified)

    cache = st.tuples(st.sampled_from(originals), st.integers(0, 1 << 16), st.binary(max_size=8),
                      st.integers(0, 64)).map(_damaged_cache)
    return rarely(rarely(made(), cache, one_in=8), _inputs(), one_in=6)


def _damaged_cache(case: tuple[str, int, bytes, int]) -> bytes:
    """A fetched original's cache with `patch` written at `at` (header, boundaries, name table) and `cut` bytes cut."""
    text, at, patch, cut = case
    data = bytearray(original_names.build("a.ts", text.encode("utf-8", "replace"), NAMES_BUDGET))
    at = len(original_names.MAGIC) + at % max(1, len(data) - len(original_names.MAGIC))
    data[at : at + len(patch)] = patch
    return bytes(data[: len(data) - cut] if cut < len(data) - 8 else data)

