"""The source-map engine against real bundles and independently recorded answers.

Bundles in tests/fixtures/js/out/ come from esbuild, terser, rollup and webpack
(`build.sh`); expectations in expected/ were recorded by `record.mjs` with
`@jridgewell/trace-mapping` and `node --enable-source-maps`, never from this
project. `test_fixture_expectations_are_current` re-records them from the
committed bundles so they cannot drift.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from symbolicator.cli import main as cli_main
from symbolicator.sourcemaps import SmCache, build_from_map, parse
from symbolicator.sourcemaps.context import minified_context, split_lines, utf16_to_index
from symbolicator.sourcemaps.sourcemap import SourceMap
from symbolicator.sourcemaps.urls import (
    decode_data_url,
    find_source_mapping_url,
    is_data_url,
    join_source_root,
    resolve_joined,
)

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "js"
OUT = FIXTURES / "out"
EXPECTED = FIXTURES / "expected"
NAMES = sorted(p.name.removesuffix(".lookups.json") for p in EXPECTED.glob("*.lookups.json"))


def _symbolicator_join(source: str | None, root: str | None) -> str | None:
    """Symbolicator's (the Rust `sourcemap` crate's) join: root without one trailing `/`, `/`, source.
    Sources that come out as `webpack:`/`app://`-style names are kept so (see docs/javascript.md)."""
    joined = f"{root.removesuffix('/')}/{source or ''}" if root else (source or "")
    return joined if re.match(r"^(?!https?:)(?:[a-z][a-z0-9+.-]*://|webpack:)", joined, re.IGNORECASE) else None


def _expected(name: str, kind: str) -> dict[str, Any]:
    """A recorded expectation; trace-mapping's resolved names of `webpack:`-style sources are replaced by
    the names as the map gives them (Symbolicator's rule, kept by this project)."""
    exp = json.loads((EXPECTED / f"{name}.{kind}.json").read_text("utf-8"))
    lookups = exp if kind == "lookups" else json.loads((EXPECTED / f"{name}.lookups.json").read_text("utf-8"))
    if lookups["map_url"] == lookups["js"]:
        return exp
    raw = json.loads((OUT / lookups["map_url"]).read_text("utf-8"))
    kept = {tm: _symbolicator_join(src, raw.get("sourceRoot"))
            for tm, src in zip(lookups["sources"], raw.get("sources") or [])}
    kept = {tm: sym for tm, sym in kept.items() if sym}
    if kind == "lookups":
        exp["sources"] = [kept.get(s, s) for s in exp["sources"]]
    else:
        for frame in exp.get("frames", []):
            frame["original"]["file"] = kept.get(frame["original"]["file"], frame["original"]["file"])
    return exp


def load_fixture(name: str) -> tuple[SourceMap, SmCache, dict[str, Any]]:
    """Parse a fixture's map the way record.mjs located it (same map URL), and build its cache."""
    exp = _expected(name, "lookups")
    js = OUT / exp["js"]
    if exp["map_url"] == exp["js"]:
        url = find_source_mapping_url(js.read_text("utf-8"))
        assert url is not None and is_data_url(url)
        data = decode_data_url(url)
    else:
        data = (OUT / exp["map_url"]).read_bytes()
    sm = parse(data, exp["map_url"])
    return sm, SmCache.from_bytes(build_from_map(sm), map_url=exp["map_url"]), exp


def test_every_bundler_is_covered() -> None:
    assert {
        "esbuild",
        "esbuild-inline",
        "esbuild-root-url",
        "esbuild-root-path",
        "terser",
        "rollup",
        "webpack",
        "index",
    } <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_lookups_agree_with_trace_mapping(name: str) -> None:
    sm, cache, exp = load_fixture(name)
    mismatches = []
    answered = 0
    for line, col, src, oline, ocol, nm in exp["cases"]:
        want = None if src is None else (exp["sources"][src], oline, ocol, None if nm is None else exp["names"][nm])
        for engine in (sm, cache):
            tok = engine.lookup(line, col)
            got = None if tok is None else (tok.source, tok.original_line, tok.original_column, tok.name)
            if got != want:
                mismatches.append((type(engine).__name__, line, col, got, want))
        answered += want is not None
    assert not mismatches, f"{len(mismatches)} of {2 * len(exp['cases'])} differ, first: {mismatches[:5]}"
    assert answered > 50 and answered < len(exp["cases"])


@pytest.mark.parametrize("name", NAMES)
def test_thrown_frames_agree_with_node(name: str) -> None:
    _, cache, _ = load_fixture(name)
    frames = _expected(name, "node")["frames"]
    assert frames, "node printed no frames inside the bundle"
    for frame in frames:
        tok = cache.lookup(frame["line"], frame["column"])
        assert tok is not None, frame
        original = frame["original"]
        assert (tok.original_line, tok.original_column) == (original["line"], original["column"])
        if original["file"].startswith("/") or "://" in original["file"]:
            assert tok.source == original["file"]
        else:
            assert os.path.normpath(os.path.join("out", tok.source)) == original["file"]


def test_index_map_section_starts_mid_line() -> None:
    _, cache, _ = load_fixture("index")
    greet_code = (OUT / "parts" / "greet.js").read_text("utf-8").split("\n")[0]
    offset = len(greet_code.encode("utf-16-le")) // 2 + 1
    assert len(greet_code) + 1 != offset, "the first section must hold non-BMP text, so UTF-16 and code points differ"
    tokens = [cache.lookup(1, col) for col in range(offset - 20, offset + 20)]
    firsts = [t for t in tokens if t is not None and t.generated_column > offset]
    assert firsts and all("/shop/" in t.source for t in firsts)
    assert all("/greet/" in t.source for t in tokens if t is not None and t.generated_column <= offset)
    third = cache.lookup(2, 60)
    assert third is not None and "/greet/" in third.source


def test_utf16_columns_land_on_the_throw() -> None:
    """Node's column for the top frame, sliced in UTF-16 units, points at `new` or `throw`."""
    line = split_lines((OUT / "esbuild" / "app.js").read_text("utf-8"))[0]
    top = _expected("esbuild", "node")["frames"][0]
    index = utf16_to_index(line, top["column"] - 1)
    assert not line[:index].isascii(), "the fixture must have non-ASCII text before the throw"
    assert line[index:].startswith(("new ", "throw")), line[index : index + 20]
    ctx = minified_context(line, 1, top["column"])
    assert ctx is not None and "{snip}" in ctx.context_line
    assert ctx.context_line.replace("{snip} ", "").replace(" {snip}", "") in line


def resolve_source(source: str | None, source_root: str | None, map_url: str | None) -> str:
    """A map's `sources[i]` resolved as `sourcemap.parse` resolves it (join the root, then the map's URL)."""
    return resolve_joined(join_source_root(source, source_root), map_url)


def test_trace_mapping_url_resolution() -> None:
    """trace-mapping's `resolvedSources`, except names of non-fetchable schemes, kept as Symbolicator keeps them."""
    cases = json.loads((EXPECTED / "urls.json").read_text("utf-8"))["cases"]
    kept = [c for c in cases if _symbolicator_join(c[2], c[1])]
    assert len(kept) > 50 and any("/./" in str(_symbolicator_join(c[2], c[1])) for c in kept)
    wrong = [
        (c, got) for c in cases
        if (got := resolve_source(c[2], c[1], c[0] or None)) != (_symbolicator_join(c[2], c[1]) or c[3])
    ]
    assert not wrong, f"{len(wrong)} of {len(cases)} differ, first: {wrong[:5]}"


def test_source_root_joining() -> None:
    url_map, _, _ = load_fixture("esbuild-root-url")
    path_map, _, _ = load_fixture("esbuild-root-path")
    assert all(s.startswith("https://cdn.example.com/") for s in url_map.sources)
    assert all(s.startswith("/src/shop/") for s in path_map.sources)
    webpack, _, _ = load_fixture("webpack")
    assert all(s.startswith("webpack://greet/") for s in webpack.sources)


def test_ignore_list_marks_vendor_frames() -> None:
    sm, cache, exp = load_fixture("rollup")
    assert [sm.sources[i] for i in sm.ignored] == ["../src/greet/vendor/pad.js"]
    frames = _expected("rollup", "node")["frames"]
    tokens = [cache.lookup(f["line"], f["column"]) for f in frames]
    assert [t.in_app for t in tokens if t] == ["vendor" not in f["original"]["file"] for f in frames]


def test_source_context_from_sources_content() -> None:
    _, cache, _ = load_fixture("terser")
    frame = _expected("terser", "node")["frames"][0]
    tok = cache.lookup(frame["line"], frame["column"])
    assert tok is not None
    ctx = cache.source_context(tok.source_index, tok.original_line)
    original = (FIXTURES / os.path.normpath(os.path.join("out", tok.source))).read_text("utf-8").splitlines()
    assert ctx is not None
    assert ctx.context_line == original[tok.original_line - 1]
    assert ctx.pre_context == original[tok.original_line - 6 : tok.original_line - 1]
    assert ctx.post_context == original[tok.original_line : tok.original_line + 5]


def _cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert cli_main(["resolve-js", *argv, "--json"]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("name", ["esbuild", "esbuild-inline", "terser", "webpack", "index"])
def test_resolve_js_json_matches_trace_mapping(
    name: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    exp = _expected(name, "lookups")
    monkeypatch.chdir(OUT)
    cases = exp["cases"][::7]
    positions = [f"{line}:{col}" for line, col, *_ in cases]
    which = ["--minified", exp["js"]] if name == "esbuild-inline" else ["--sourcemap", exp["map_url"]]
    results = _cli_json(capsys, *which, *positions)
    assert len(results) == len(cases)
    for res, (line, col, src, oline, ocol, nm) in zip(results, cases, strict=True):
        assert set(res) == {"line", "column", "source", "original_line", "original_column", "name", "function", "error"}
        assert (res["line"], res["column"]) == (line, col)
        assert res["source"] == (None if src is None else exp["sources"][src])
        assert res["original_line"] == oline
        assert res["original_column"] == ocol
        assert res["name"] == (None if nm is None else exp["names"][nm])
        assert res["error"] == (None if src is not None else "invalid_location")


def test_resolve_js_finds_the_map_beside_and_reads_stdin(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(OUT)
    frame = _expected("esbuild", "node")["frames"][0]
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(f"{frame['line']}:{frame['column']}\n\n0:5\n"))
    first, second = _cli_json(capsys, "--minified", "esbuild/app.js")
    assert (first["source"], first["original_line"], first["original_column"]) == ("../src/shop/cart.ts", 44, 13)
    assert first["function"] == "Cart.checkout"
    assert second["error"] == "invalid_location" and second["source"] is None


def test_resolve_js_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["resolve-js", "--sourcemap", str(OUT / "esbuild" / "app.js.map"), "abc"]) == 1  # bad input
    assert cli_main(["resolve-js", "--sourcemap", str(tmp_path / "missing.map"), "1:1"]) == 1
    bad = tmp_path / "bad.map"
    bad.write_text('{"version": 3, "sources": [], "names": [], "mappings": "A$"}')
    assert cli_main(["resolve-js", "--sourcemap", str(bad), "1:1"]) == 1
    assert "invalid base64" in capsys.readouterr().err
    plain = tmp_path / "plain.js"
    plain.write_text("console.log(1)\n")
    assert cli_main(["resolve-js", "--minified", str(plain), "1:1"]) == 1
    remote = tmp_path / "remote.js"
    remote.write_text("x()\n//# sourceMappingURL=https://cdn.example.com/remote.js.map\n")
    assert cli_main(["resolve-js", "--minified", str(remote), "1:1"]) == 1
    assert "reads only files" in capsys.readouterr().err
    shutil.copy(OUT / "esbuild" / "app.js.map", tmp_path / "app.js.map")
    (tmp_path / "query.js").write_text("x()\n//# sourceMappingURL=app.js.map?v=3\n")
    assert cli_main(["resolve-js", "--minified", str(tmp_path / "query.js"), "--json", "1:1"]) == 0
    assert '"source"' in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        cli_main(["resolve-js", "1:1"])
    assert exc.value.code == 2


def test_resolve_js_human_output(capsys: pytest.CaptureFixture[str]) -> None:
    frame = _expected("esbuild", "node")["frames"][0]
    assert (
        cli_main(
            [
                "resolve-js",
                "--sourcemap",
                str(OUT / "esbuild" / "app.js.map"),
                f"{frame['line']}:{frame['column']}",
                "9:1",
            ]
        )
        == 0
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].endswith("cart.ts:44:13 in Cart.checkout")
    assert lines[1] == "9:1 -> ?? (invalid_location)"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_fixture_expectations_are_current(tmp_path: Path) -> None:
    modules = ROOT / "node_modules"
    if not (modules / "@jridgewell" / "trace-mapping").is_dir():
        pytest.skip("run `npm ci` first: @jridgewell/trace-mapping is missing")
    env = {**os.environ, "NODE_PATH": str(modules)}
    subprocess.run(["node", "record.mjs", "out", str(tmp_path)], cwd=FIXTURES, env=env, check=True, timeout=120)
    recorded = sorted(p.name for p in tmp_path.iterdir())
    assert recorded == sorted(p.name for p in EXPECTED.iterdir())
    for name in recorded:
        assert (tmp_path / name).read_text("utf-8") == (EXPECTED / name).read_text("utf-8"), name
