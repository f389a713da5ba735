"""`sourcemap`: a map (and optionally its minified file) through the service's conversion and lookups.

An input is the map's bytes, optionally followed by a NUL and the minified source (raw
JSON cannot hold a NUL, so the split is unambiguous). It goes through
`service.js.lookup.convert_sourcemap` — the worker-pool job: parse, scopes from the minified
source within the service's default name budget (the token estimate and the RSS-watched
parse), cache build — and the cache file is opened with `SmCache.open`, as the service
does, then probed at every mapping's start, just past it, and at absurd positions.

Differential check: each probe must give the same token from the cache as from the
parsed map itself (`SourceMap.lookup`), the two implementations of one lookup. A Hermes map
(`x_hermes_function_offsets`) may answer fewer positions from the cache (only offsets inside a
compiled function of the bytecode), never other ones. React Native inputs: Metro function maps
(`x_facebook_sources`) and Hermes offsets of every shape, the Metro and Hermes fixtures as seeds
(a Hermes map before its bytecode bundle).
"""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fuzz.contract import Violation
from fuzz.scratch import scratch_dir
from symbolicator.config import LimitsSettings
from symbolicator.service.js.lookup import convert_sourcemap
from symbolicator.sourcemaps.smcache import SmCache
from symbolicator.sourcemaps.sourcemap import parse

if TYPE_CHECKING:
    from hypothesis import strategies as st

MAP_URL = "https://cdn.example.test/static/js/app.min.js.map"
MAX_PROBED = 200
NAMES_BUDGET = LimitsSettings().js_names_max_memory_bytes
_FIXTURES = Path(__file__).resolve().parents[2] / "tests" / "fixtures"
_SOURCE_NAMES = ("src/app.js", "../lib/b.ts", "webpack:///./src/c.js", "webpack://pkg/./d.js", "/abs/e.js",
                 "https://cdn.example.test/f.js", "//cdn.example.test/g.js", "file:///h.js", "data:,x", "app:///i.js",
                 "a b%20c.js", "?q=1", "#frag", "..", ".", "~/j.js", "C:\\k.js", "", " ", "\u00e9.js")
_NAMES = ("f", "Cart", "checkout", "default", "constructor", "", " ", "$", "_", "a.b", "\u00e9", "<anonymous>")
_ODD_POSITIONS = ((1, 1), (0, 0), (-1, 3), (1, 2**32 - 1), (1, 2**32), (1, 2**32 + 1), (2**32, 1), (2**32 + 1, 1),
                  (2**31, 2**31), (10**6, 10**6))


def split(data: bytes) -> tuple[bytes, bytes | None]:
    """(map bytes, minified source or None)."""
    map_bytes, sep, minified = data.partition(b"\0")
    return map_bytes, minified if sep else None


def run(data: bytes) -> None:
    map_bytes, minified = split(data)
    out = scratch_dir() / "map.smcache"
    convert_sourcemap(map_bytes, minified, str(out), NAMES_BUDGET)
    sm = parse(map_bytes, MAP_URL)
    s = sm.segments
    probes = list(_ODD_POSITIONS)
    for i in range(min(len(s), MAX_PROBED)):
        line, col = int(s.gen_line[i]) + 1, int(s.gen_col[i]) + 1
        probes += [(line, col), (line, col + 1)]
    with SmCache.open(out, MAP_URL) as cache:
        for line, col in probes:
            token = cache.lookup(line, col)
            expected = sm.lookup(line, col)
            if token is not None:
                if dataclasses.replace(token, function=None, function_from_original=False) != expected:
                    raise Violation("wrong", f"cache and map disagree at {line}:{col}: {token} vs {expected}")
                cache.source_context(token.source_index, token.original_line)
            elif expected is not None and not cache.is_hermes:
                raise Violation("wrong", f"cache has no token at {line}:{col}, the map has {expected}")
        json.dumps([cache.file, cache.debug_id, cache.sources, cache.raw_sources])


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    from fuzz.json_mutate import mutate as mutate_json

    map_bytes, minified = split(data)
    if minified is None or random.Random(seed).random() < 0.9:
        room = max_size - (len(data) - len(map_bytes))
        return mutate_json(map_bytes, max(room, 1), seed) + (b"\0" + minified if minified is not None else b"")
    from fuzz.json_mutate import byte_mutate

    return map_bytes + b"\0" + byte_mutate(minified, max(max_size - len(map_bytes) - 1, 1))


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.strategies import damaged, dump, ints, json_values, mappings, rarely, texts

    small = st.integers(0, 6)
    source = rarely(rarely(st.sampled_from(_SOURCE_NAMES), texts()), st.none(), one_in=6)
    name = rarely(st.sampled_from(_NAMES), texts())
    # Original sources (parsed for names where code moved: inlining.py), TypeScript among them.
    originals = sorted(p.read_text() for folder in ("js/src", "js_scopes/src") for ext in ("*.js", "*.ts")
                       for p in (_FIXTURES / folder).rglob(ext))
    content = st.one_of(st.sampled_from(originals), st.none(), st.text(alphabet="ab\n\r\u2028\U0001f600 ;{}",
                                                                           max_size=30))

    version = rarely(st.just(3), json_values(), one_in=64)
    vlq_text = st.text(alphabet="ACDEFGgBAa+/;,!", max_size=24)
    function_map = st.fixed_dictionaries({"names": rarely(st.lists(name, max_size=4), json_values()),
                                          "mappings": rarely(vlq_text, json_values())})
    facebook_sources = st.lists(rarely(st.one_of(st.none(), st.lists(rarely(function_map, json_values()),
                                                                        max_size=2)), json_values()), max_size=6)
    hermes_offsets = st.dictionaries(rarely(st.sampled_from(["0", "1"]), texts()),
                                     rarely(st.lists(rarely(st.integers(0, 9000), ints()), max_size=6), json_values()),
                                     max_size=2)
    optional = st.fixed_dictionaries({}, optional={
        "sourcesContent": st.lists(content, max_size=6),
        "sourceRoot": texts(),
        "file": texts(),
        "debugId": st.one_of(st.uuids().map(str), texts()),
        "ignoreList": st.lists(rarely(small, ints()), max_size=3),
        "x_google_ignoreList": st.lists(rarely(small, ints()), max_size=3),
        "x_facebook_sources": rarely(facebook_sources, json_values()),
        "x_hermes_function_offsets": rarely(hermes_offsets, json_values()),
    })
    sources_list, names_list = st.lists(source, min_size=1, max_size=6), st.lists(name, max_size=6)

    @st.composite
    def regular(draw: st.DrawFn) -> dict[str, Any]:
        sources, names = draw(sources_list), draw(names_list)
        return {"version": draw(version), "sources": sources, "names": names,
                "mappings": draw(mappings(len(sources), len(names))), **draw(optional)}

    position = rarely(st.integers(0, 400), ints(), one_in=16)
    offset = st.fixed_dictionaries({"line": rarely(st.integers(0, 3), position), "column": position})

    def in_order(sections: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(sections, key=lambda s: (s["offset"]["line"], s["offset"]["column"]))

    def index_map(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        section = st.fixed_dictionaries({"offset": offset, "map": inner}, optional={"url": texts()})
        sections = st.lists(section, min_size=1, max_size=4)
        return st.fixed_dictionaries({"version": st.just(3), "sections": rarely(sections.map(in_order), sections)},
                                     optional={"file": texts()})

    maps = damaged(st.recursive(regular(), index_map, max_leaves=5), max_edits=1)
    bytecode = (_FIXTURES / "rn/out/hermes/index.android.bundle").read_bytes()
    minified = st.one_of(
        st.none(),
        st.just(bytecode.decode("latin-1")),
        st.sampled_from(sorted(p.read_text() for p in (_FIXTURES / "js" / "out").glob("*/app.js"))),
        st.text(alphabet="function(){}=>class ;x\n.\"'`/*", max_size=200),
    )
    prefix = rarely(st.just(b""), st.sampled_from([b")]}'\n", b"\xef\xbb\xbf", b")]}'"]))

    def encode(parts: tuple[bytes, Any, str | None]) -> bytes:
        head, doc, source = parts
        body = head + dump(doc)
        if source is None:
            return body
        raw = source.encode("latin-1") if source.startswith("\xc6\x1f\xbc") else source.encode("utf-8", "surrogatepass")
        return body + b"\0" + raw

    return rarely(st.tuples(prefix, maps, minified).map(encode), st.binary(max_size=64), one_in=32)


def seeds() -> dict[str, bytes]:
    """Every fixture map beside its minified file, from the bundler, scope and React Native fixtures."""
    out = {}
    for kind in ("metro", "hermes", "segments"):  # larger than the others: a real RN map is never small
        folder = _FIXTURES / "rn/out" / kind
        out[f"rn-{kind}"] = (folder / "index.android.bundle.map").read_bytes() + b"\0" + (
            folder / "index.android.bundle").read_bytes()
    for folder in ("js/out", "js_scopes/out"):
        for path in sorted((_FIXTURES / folder).rglob("*.map")):
            minified = path.with_suffix("")
            data = path.read_bytes()
            if minified.is_file():
                data += b"\0" + minified.read_bytes()
            if len(data) <= 40_000:
                out[f"{folder.split('/')[0]}-{path.parent.name}-{minified.name}"] = data
    return out
