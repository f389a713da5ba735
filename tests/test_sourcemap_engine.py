"""Engine details: bad input, VLQ decoding, the cache file, scopes, context, URLs.

The fixture-wide agreement with trace-mapping is in test_sourcemaps.py; here each
rule gets a small map whose answer can be worked out by hand.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from symbolicator.errors import MalformedSourceMap
from symbolicator.sourcemaps import vlq
from symbolicator.sourcemaps.context import (
    LineIndex,
    context_from_lines,
    minified_context,
    split_lines,
    trim_line,
    utf16_to_index,
)
from symbolicator.sourcemaps.smcache import (
    SOURCEMAP_CACHE_VERSION,
    CacheFormatError,
    SmCache,
    build,
    build_from_map,
    build_from_sources,
    flatten_scopes,
    write,
)
from symbolicator.sourcemaps.sourcemap import NameResolver, OriginalLineResolver, parse
from symbolicator.sourcemaps.urls import InvalidBase64SourceMap, decode_data_url, find_source_mapping_url

OUT = Path(__file__).resolve().parent / "fixtures" / "js" / "out"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def encode_vlq(value: int) -> str:
    """Reference encoder, written from the spec, for building test maps."""
    v = (-value << 1) | 1 if value < 0 else value << 1
    out = ""
    while True:
        digit, v = v & 31, v >> 5
        out += B64[digit | (32 if v else 0)]
        if not v:
            return out


def encode_mappings(lines: list[list[tuple[int, ...]]]) -> str:
    """Absolute segments per line → a `mappings` string (deltas as the spec says)."""
    prev = [0, 0, 0, 0]
    out = []
    for segments in lines:
        col = 0
        parts = []
        for seg in segments:
            text = encode_vlq(seg[0] - col)
            col = seg[0]
            for k, value in enumerate(seg[1:]):
                text += encode_vlq(value - prev[k])
                prev[k] = value
            parts.append(text)
        out.append(",".join(parts))
    return ";".join(out)


def make_map(mappings: str, sources: int = 2, names: int = 2, **extra: object) -> bytes:
    body = {
        "version": 3,
        "sources": [f"s{i}.js" for i in range(sources)],
        "names": [f"n{i}" for i in range(names)],
        "mappings": mappings,
    }
    return orjson.dumps({**body, **extra})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (make_map("AAAA", version=2), "unsupported source map version 2"),
        (orjson.dumps({"sources": [], "mappings": ""}), "unsupported source map version None"),
        (make_map("AA$A"), "invalid base64 character '$' at offset 2"),
        (make_map("gggggggggggA"), "VLQ overflow"),
        (make_map("+/+/+/f"), "VLQ overflow"),
        (make_map("AAAg"), "cut off"),
        (make_map("AAAg;AAAA"), "cut off"),
        (make_map("AA"), "has 2 fields"),
        (make_map("AAAAAAAAAAAA"), "has 12 fields"),
        (make_map("AEAA"), "refers to source index 2, but the map has 2 sources"),
        (make_map("AAAAE"), "refers to name index 2, but the map has 2 names"),
        (make_map("AAAA", names=0).replace(b'"AAAA"', b'"AAAAA"'), "refers to name index 0, but the map has 0 names"),
        (make_map("AADA"), "original line"),
        (make_map("D"), "generated column of -1"),
        (make_map(123), "`mappings` must be a string"),  # type: ignore[arg-type]
        (orjson.dumps({"version": 3, "sources": [1], "mappings": ""}), "`sources[0]` must be a string"),
        (orjson.dumps({"version": 3, "sections": [{"offset": {"line": 0}, "map": {}}]}), "non-negative integer"),
        (
            orjson.dumps({"version": 3, "sections": [{"offset": {"line": 0, "column": 0}, "url": "a.map"}]}),
            "refers to a url",
        ),
        (
            orjson.dumps(
                {
                    "version": 3,
                    "sections": [
                        {"offset": {"line": 1, "column": 0}, "map": {"mappings": ""}},
                        {"offset": {"line": 0, "column": 0}, "map": {"mappings": ""}},
                    ],
                }
            ),
            "starts before",
        ),
    ],
)
def test_bad_maps_are_refused_with_a_precise_message(data: bytes, message: str) -> None:
    with pytest.raises(MalformedSourceMap, match=re.escape(message)):
        parse(data)


def test_xssi_prefix_bom_and_debug_ids() -> None:
    sm = parse(b")]}'\n" + make_map("AAAA", debugId="8F5A1E4B-EB0A-5403-9F85-48672CEC5568"))
    assert sm.debug_id == "8f5a1e4b-eb0a-5403-9f85-48672cec5568"
    assert (
        parse(b"\xef\xbb\xbf" + make_map("AAAA", debug_id="8f5a1e4beb0a54039f8548672cec5568")).debug_id
        == "8f5a1e4b-eb0a-5403-9f85-48672cec5568"
    )
    assert parse(make_map("AAAA", debugId="not-a-uuid")).debug_id is None


def test_debug_id_injected_by_sentry_cli() -> None:
    js = (OUT / "debugid" / "app.js").read_text("utf-8")
    comment = re.findall(r"//# debugId=([0-9a-f-]+)", js)[-1]
    cache = SmCache.from_bytes(build((OUT / "debugid" / "app.js.map").read_bytes()))
    assert cache.debug_id == comment


def test_ignore_list_and_legacy_x_google_ignore_list() -> None:
    for key in ("ignoreList", "x_google_ignoreList"):
        cache = SmCache.from_bytes(build(make_map("AAAA,ECAA", **{key: [1, 7, "x"]})))
        assert cache.lookup(1, 1).in_app and not cache.lookup(1, 3).in_app  # type: ignore[union-attr]
    assert parse(make_map("AAAA", ignoreList=[0], x_google_ignoreList=[1])).ignored == frozenset({0})


def test_lookup_stays_on_its_line() -> None:
    mappings = encode_mappings([[(4, 0, 0, 0)], [], [(2, 1, 5, 7, 1), (9, 0, 9, 0)], [(0,)]])
    cache = SmCache.from_bytes(build(make_map(mappings)))
    assert cache.lookup(1, 4) is None
    tok = cache.lookup(1, 5)
    assert tok is not None and (tok.source, tok.original_line, tok.original_column) == ("s0.js", 1, 1)
    assert cache.lookup(1, 10_000) == tok
    assert cache.lookup(2, 1) is None and cache.lookup(2, 50) is None
    assert cache.lookup(3, 2) is None
    tok = cache.lookup(3, 9)
    assert tok is not None and (tok.source, tok.original_line, tok.original_column, tok.name) == ("s1.js", 6, 8, "n1")
    assert cache.lookup(4, 1) is None, "a 1-field mapping has no source"
    assert cache.lookup(5, 1) is None


@pytest.mark.parametrize(
    ("line", "col"), [(0, 1), (1, 0), (-1, 5), (1, -3), (1, 2**32 + 5), (2**40, 1), (2**64, 2**64)]
)
def test_absurd_positions_give_nothing(line: int, col: int) -> None:
    sm = parse(make_map(encode_mappings([[(0, 0, 0, 0)]])))
    assert sm.lookup(line, col) is None
    assert SmCache.from_bytes(build_from_map(sm)).lookup(line, col) is None


def test_unsorted_segments_are_sorted_and_duplicates_resolve_like_trace_mapping() -> None:
    mappings = ",".join(
        [encode_vlq(10) + "AAA", encode_vlq(-10) + "ACA", encode_vlq(10) + "ACA", encode_vlq(0) + "ACA"]
    )
    cache = SmCache.from_bytes(build(make_map(mappings)))
    assert cache.lookup(1, 1).original_line == 2  # type: ignore[union-attr]
    assert cache.lookup(1, 11).original_line == 1, "exact hit: the first of equal columns"  # type: ignore[union-attr]
    assert cache.lookup(1, 12).original_line == 4, "between: the last of equal columns"  # type: ignore[union-attr]


def test_index_map_offsets_and_cut_at_next_section() -> None:
    a = {
        "version": 3,
        "sources": ["a.js"],
        "names": [],
        "mappings": encode_mappings([[(0, 0, 0, 0), (30, 0, 3, 0)], [(0, 0, 9, 0)]]),
    }
    b = {
        "version": 3,
        "sourceRoot": "lib",
        "sources": ["b.js"],
        "names": ["x"],
        "mappings": encode_mappings([[(0, 0, 0, 0, 0), (5, 0, 1, 0)], [(2, 0, 2, 0)]]),
    }
    index = {
        "version": 3,
        "sections": [{"offset": {"line": 0, "column": 0}, "map": a}, {"offset": {"line": 0, "column": 20}, "map": b}],
    }
    cache = SmCache.from_bytes(build(orjson.dumps(index)), map_url="https://x.test/js/app.js.map")
    assert cache.sources == ("https://x.test/js/a.js", "https://x.test/js/lib/b.js")
    assert cache.lookup(1, 20).source.endswith("a.js")  # type: ignore[union-attr]
    first_b = cache.lookup(1, 21)
    assert first_b is not None and first_b.source.endswith("b.js") and first_b.name == "x"
    assert cache.lookup(1, 31).original_line == 2, "a's mapping at column 30 lies in b's section and is cut"  # type: ignore[union-attr]
    assert cache.lookup(2, 1) is None and cache.lookup(2, 3).original_line == 3  # type: ignore[union-attr]


def test_one_cache_serves_a_map_found_at_several_urls() -> None:
    data = build(make_map("AAAA", sourceRoot="src"))
    assert SmCache.from_bytes(data, map_url="https://a.test/js/app.js.map").sources[0] == "https://a.test/js/src/s0.js"
    assert SmCache.from_bytes(data, map_url="dist/app.js.map").sources[0] == "dist/src/s0.js"
    assert SmCache.from_bytes(data).sources[0] == "src/s0.js"
    assert SmCache.from_bytes(data).raw_sources[0] == "s0.js"


def test_nested_index_maps_flatten_like_one_level() -> None:
    leaf = {"version": 3, "sources": ["a.js"], "names": [], "mappings": encode_mappings([[(0, 0, 0, 0), (6, 0, 1, 0)]])}
    inner = {"version": 3, "sections": [{"offset": {"line": 0, "column": 3}, "map": leaf}]}
    nested = {"version": 3, "sections": [{"offset": {"line": 2, "column": 4}, "map": inner}]}
    flat = {"version": 3, "sections": [{"offset": {"line": 2, "column": 7}, "map": leaf}]}
    a, b = parse(orjson.dumps(nested)), parse(orjson.dumps(flat))
    assert a.keys.tolist() == b.keys.tolist() == [(2 << 32) | 7, (2 << 32) | 13]
    assert a.lookup(3, 14) == b.lookup(3, 14) and a.lookup(3, 14).original_line == 2  # type: ignore[union-attr]


@dataclass
class Scope:
    start_line: int
    start_col: int
    end_line: int
    end_col: int
    name: str | None


def test_scopes_flatten_to_the_innermost_name() -> None:
    scopes = [
        Scope(0, 0, 0, 100, "outer"),
        Scope(0, 10, 0, 20, "inner"),
        Scope(0, 12, 0, 15, None),
        Scope(0, 30, 0, 40, "second"),
        Scope(1, 0, 1, 5, "next"),
    ]
    flat = flatten_scopes(scopes)
    assert flat == [
        (0, "outer"),
        (10, "inner"),
        (12, None),
        (15, "inner"),
        (20, "outer"),
        (30, "second"),
        (40, "outer"),
        (100, None),
        (1 << 32, "next"),
        ((1 << 32) | 5, None),
    ]
    cache = SmCache.from_bytes(build(make_map(encode_mappings([[(0, 0, 0, 0)], [(0, 0, 0, 0)]])), scope_names=scopes))
    assert [cache.function_at(1, c + 1) for c in (0, 11, 13, 16, 35, 99, 100)] == [
        "outer",
        "inner",
        None,
        "inner",
        "second",
        "outer",
        None,
    ]
    assert cache.lookup(2, 3).function == "next"  # type: ignore[union-attr]


def test_resolvers_for_the_scopes_module() -> None:
    data = make_map(
        encode_mappings([[(0, 0, 0, 0), (4, 1, 1, 2, 1), (4, 1, 1, 2, 0), (8, 0, 0, 0)]]),
        sourcesContent=["a", "x\n  name(here)\n"],
    )
    sm = parse(data)
    names, original = NameResolver(sm), OriginalLineResolver(sm)
    # Exact hits first; else the nearest mapping at or before on the line (Symbolicator's `lookup_token`).
    assert [names(0, c) for c in (0, 3, 4, 5, 8, 9)] == [None, None, "n1", "n1", None, None]
    assert original(0, 4) == ("  name(here)", 2)
    assert original(0, 5) is None and original(0, 8) == ("a", 0) and original(7, 0) is None


def test_build_from_sources_names_functions_of_a_real_bundle() -> None:
    js = (OUT / "esbuild" / "app.js").read_text("utf-8")
    cache = SmCache.from_bytes(build_from_sources((OUT / "esbuild" / "app.js.map").read_bytes(), js))
    assert cache.lookup(1, 516).function == "Cart.checkout"  # type: ignore[union-attr]
    plain = SmCache.from_bytes(build_from_sources((OUT / "esbuild" / "app.js.map").read_bytes(), js, with_scopes=False))
    assert plain.lookup(1, 516).function is None  # type: ignore[union-attr]


def test_cache_file_round_trip_and_corruption(tmp_path: Path) -> None:
    data = build(make_map(encode_mappings([[(0, 0, 0, 0, 1)]]), sourcesContent=["é\n🎉\nc"], file="app.js"))
    path = tmp_path / "good.smc"
    write(path, data)
    with SmCache.open(path) as cache:
        tok = cache.lookup(1, 1)
        assert tok is not None and tok.name == "n1" and cache.file == "app.js"
        assert cache.source_context(0, 2, n=1) is not None and cache.source_context(0, 2, n=1).pre_context == ["é"]  # type: ignore[union-attr]
        assert cache.source_context(1, 1) is None and cache.source_context(0, 9) is None
    corrupt = {
        "empty": b"",
        "truncated": data[: len(data) - 8],
        "header only": data[:10],
        "magic": b"XXCACHE\x00" + data[8:],
        "version": data[:8] + (SOURCEMAP_CACHE_VERSION + 1).to_bytes(4, "little") + data[12:],
        "section": data[:24] + (len(data) * 2).to_bytes(8, "little") + data[32:],
        "json": b'{"version": 3}' + b"\0" * 40,
    }
    for what, blob in corrupt.items():
        bad = tmp_path / f"{what}.smc"
        bad.write_bytes(blob)
        with pytest.raises(CacheFormatError):
            SmCache.open(bad)


def test_data_urls_and_source_mapping_url_discovery() -> None:
    payload = make_map("AAAA")
    assert (
        decode_data_url("data:application/json;charset=utf-8;base64," + base64.b64encode(payload).decode()) == payload
    )
    assert decode_data_url("data:application/json," + "%7B%7D") == b"{}"
    with pytest.raises(InvalidBase64SourceMap):
        decode_data_url("data:application/json;base64,@@@@")
    with pytest.raises(MalformedSourceMap):
        decode_data_url("data:application/json;base64")
    text = (
        "//# sourceMappingURL=old.map\nconst s = 1;\n//@ sourceMappingURL=legacy.map\n//# sourceMappingURL=app.js.map\n"
    )
    assert find_source_mapping_url(text) == "app.js.map"
    assert find_source_mapping_url("var a = 1;\n") is None
    assert find_source_mapping_url("/*# sourceMappingURL=style.css.map */") == "style.css.map"


def test_context_counts_utf16_and_js_line_breaks() -> None:
    assert split_lines("a\r\nb\rc\u2028d\ne\x0cf\n") == ["a", "b", "c", "d", "e\x0cf"]
    assert split_lines("a\nb\x0bc\x85\n\n") == ["a", "b\x0bc\x85", ""]
    for text in ("a\r\nb\rc\u2028d\ne\x0cf\n", "a\nb\x0bc\x85\n\n", "", "\n", "x", "\r\n\r\n"):
        assert list(LineIndex(text)) == split_lines(text), repr(text)
        assert LineIndex(text)[1:3] == split_lines(text)[1:3]
    line = "é🎉x"
    assert [utf16_to_index(line, c) for c in range(5)] == [0, 1, 2, 2, 3]
    assert utf16_to_index(line, 2) == 2, "inside the surrogate pair rounds up"
    long = "🎉" * 100 + "TARGET" + "z" * 300
    trimmed = trim_line(long, 200)
    assert trimmed.startswith("{snip} ") and trimmed.endswith(" {snip}") and "TARGET" in trimmed
    assert trimmed.index("TARGET") - len("{snip} ") == 30, "60 UTF-16 units before the column: 30 emoji"
    assert trim_line("short", 3) == "short"
    ctx = context_from_lines(["1", "2", "3"], 1, n=5)
    assert ctx is not None and ctx.pre_context == [] and ctx.post_context == ["2", "3"]



@given(
    st.lists(st.text(st.sampled_from("ab; \té🎉"), max_size=400), min_size=1, max_size=12),
    st.integers(-3, 14), st.integers(-5, 420),
)
def test_minified_context_from_a_line_index_equals_the_one_from_split_lines(
    lines: list[str], lineno: int, colno: int
) -> None:
    """The LineIndex path slices the window straight from the text; it must trim exactly as
    `trim_line` does on each whole line, for ASCII and non-ASCII texts alike."""
    for text in ("\n".join(lines), "\n".join(line.encode("ascii", "ignore").decode() for line in lines)):
        assert minified_context(LineIndex(text), lineno, colno, 5) == minified_context(text, lineno, colno, 5)

segments_strategy = st.lists(
    st.lists(
        st.one_of(
            st.tuples(st.integers(0, 5000)),
            st.tuples(st.integers(0, 5000), st.integers(0, 3), st.integers(0, 2**31 - 1), st.integers(0, 300)),
            st.tuples(
                st.integers(0, 5000), st.integers(0, 3), st.integers(0, 900), st.integers(0, 300), st.integers(0, 3)
            ),
        ),
        max_size=12,
    ),
    max_size=12,
)


@settings(max_examples=200, deadline=None)
@given(segments_strategy, st.sampled_from([4, 9, 64, 1 << 17]))
def test_vlq_decoding_matches_a_reference_encoder(lines: list[list[tuple[int, ...]]], chunk: int) -> None:
    expected = [(i, *seg, *[-1] * (5 - len(seg))) for i, segs in enumerate(lines) for seg in segs]
    mappings = encode_mappings(lines)
    old = vlq._CHUNK
    vlq._CHUNK = chunk
    try:
        s = vlq.decode_mappings(mappings)
    finally:
        vlq._CHUNK = old
    got = list(
        zip(
            s.gen_line.tolist(),
            s.gen_col.tolist(),
            s.src.tolist(),
            s.src_line.tolist(),
            s.src_col.tolist(),
            s.name.tolist(),
            strict=True,
        )
    )
    assert got == expected


sorted_lines_strategy = st.lists(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 1), st.integers(0, 30), st.integers(0, 30)), max_size=8).map(
        lambda segs: sorted(segs, key=lambda s: s[0])
    ),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(sorted_lines_strategy, st.integers(1, 8), st.integers(1, 70))
def test_lookup_matches_a_naive_reference(lines: list[list[tuple[int, ...]]], line: int, col: int) -> None:
    """Greatest lower bound on the same line; an exact hit takes the first of equal columns."""
    cache = SmCache.from_bytes(build(make_map(encode_mappings(lines))))
    segs = lines[line - 1] if line <= len(lines) else []
    exact = [s for s in segs if s[0] == col - 1]
    before = [s for s in segs if s[0] < col - 1]
    want = exact[0] if exact else (before[-1] if before else None)
    tok = cache.lookup(line, col)
    got = (
        None
        if tok is None
        else (tok.generated_column - 1, tok.source_index, tok.original_line - 1, tok.original_column - 1)
    )
    assert got == want


@pytest.mark.parametrize("segment", ["2147483648", "4294967296", "1e3", "-1", "\u0663"])
def test_hermes_segment_numbers_past_the_cache_format_are_malformed(segment: str) -> None:
    """Segment numbers become u32 cache entries: one that cannot be is the map's fault, not a crash."""
    body = {"version": 3, "sources": ["a.js"], "names": [], "mappings": "AAAA",
            "x_hermes_function_offsets": {segment: [0]}}
    with pytest.raises(MalformedSourceMap):
        parse(orjson.dumps(body))


def test_every_hermes_segment_is_kept_in_the_cache() -> None:
    """Line N + 1 is segment N: answered when the map has that segment's function offsets."""
    body = {"version": 3, "sources": ["a.js"], "names": [], "mappings": "AAAA;AACA,EAAE;AACA;AACA",
            "x_hermes_function_offsets": {"0": [0], "1": [0, 2], "3": [0]}}
    cache = SmCache.from_bytes(build_from_map(parse(orjson.dumps(body))))
    assert [cache.lookup(line, 1) is not None for line in (1, 2, 3, 4)] == [True, True, False, True]
    token = cache.lookup(2, 4)  # segment 1, offset 3: in the function starting at 2, its mapping at 2
    assert token is not None and token.generated_column == 3
