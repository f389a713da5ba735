"""Memory and CPU bounds of JS conversion (issue 15 items 2 and 11), against the real service.

- The function-name pass has a memory budget (`limits.js_names_max_memory_bytes`): a file
  over it is still mapped exactly, its frames marked `data.function_names = "skipped"`,
  while a file under it in the same request keeps its original function names.
- Workers run under `limits.worker_max_memory_bytes`: a minified file whose syntax tree does
  not fit kills its worker (tree-sitter cannot allocate), the pool recovers, that module is
  converted again without names, and the other module of the request is unaffected.
- A bundle member over the size cap fails its own frames, not the request.
- An index map with more sections than `MAX_SECTIONS` is refused up front, precisely.

Expected positions come from `@jridgewell/trace-mapping`, run here on the generated bundles;
expected names from the TypeScript compiler API (`tests/fixtures/js_scopes/`, `*.expected.json`).
The big minified files are built here by esbuild (a real bundler) from a generated source: a
function, then an array of N ones or N holes (a million holes make a syntax tree of ~390 MB).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from symbolicator.errors import MalformedSourceMap
from symbolicator.sourcemaps.scopes import estimated_cost, token_count
from symbolicator.sourcemaps.sourcemap import MAX_SECTIONS, parse
from tests.support.service import ServiceProcess
from tests.support.tools import NODE_MODULES
from tests.support.websites import Website
from tests.test_js_service import sentry_cli

REPO = Path(__file__).resolve().parent.parent
SCOPES = REPO / "tests" / "fixtures" / "js_scopes" / "out" / "esbuild"
ESBUILD = NODE_MODULES / ".bin" / "esbuild"
MiB = 1024 * 1024
APP_COST = estimated_cost((SCOPES / "app.min.js").read_bytes())

pytestmark = pytest.mark.skipif(shutil.which("node") is None or not ESBUILD.exists(), reason="needs node + esbuild")


def expected_names(bundle: Path) -> dict[tuple[int, int], str | None]:
    expected = json.loads(Path(f"{bundle}.expected.json").read_text())
    return {(row[0], row[1]): row[2] for row in expected["positions"]}


async def symbolicate(svc: ServiceProcess, frames: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.post(
        f"{svc.url}/symbolicate-js", params={"scope": "acme/web"}, json={"stacktraces": [{"frames": frames}], **extra},
        timeout=aiohttp.ClientTimeout(total=300),
    ) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
    assert body["status"] == "completed", (body, svc.log())
    return body


def serve_big(site: Website, big: Path) -> str:
    site.add_body(f"/assets/{big.name}", big.read_bytes(), content_type="application/javascript")
    site.add_body(f"/assets/{big.name}.map", Path(f"{big}.map").read_bytes(), content_type="application/json")
    return site.url(f"/assets/{big.name}")


def serve_fixture(site: Website, name: str) -> str:
    site.add_body(f"/assets/{name}", (SCOPES / name).read_bytes(), content_type="application/javascript")
    site.add_body(f"/assets/{name}.map", (SCOPES / f"{name}.map").read_bytes(), content_type="application/json")
    return site.url(f"/assets/{name}")


def js_settings(work: Path, limits: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"storage": {"backend": "local", "local_dir": str(work / "uploads")}, "cache": {"dir": str(work / "cache")},
            "fetch": {"allow_private_addresses": True, "read_timeout_s": 30.0, "total_timeout_s": 60.0},
            "scope_aliases": {"42": "acme/web"}, "workers": 1, "limits": limits, **extra}


# --- the name pass's budget ----------------------------------------------------------------------


def test_the_estimate_is_an_upper_bound_of_real_minifier_output(tmp_path: Path) -> None:
    """Tree growth measured in a fresh interpreter stays under `estimated_cost` for esbuild's minified
    bundles of real libraries (crafted input may exceed it: the RSS watch below bounds that)."""
    probe = textwrap.dedent("""
        import sys
        from symbolicator.sourcemaps.scopes import _parser, _rss, estimated_cost
        source = open(sys.argv[1], "rb").read() if sys.argv[1] != "-" else eval(sys.argv[2])
        before = _rss()
        tree = _parser().parse(source)
        print(_rss() - before, estimated_cost(source))
    """)
    bundles = []
    for lib in ("rollup/dist/shared/rollup.js", "acorn/dist/acorn.js", "terser/dist/bundle.min.js"):
        out = tmp_path / (Path(lib).stem + ".min.js")
        subprocess.run([str(ESBUILD), str(NODE_MODULES / lib), "--bundle", "--platform=node", "--minify",
                        "--external:fsevents", f"--outfile={out}", "--log-level=error"], check=True)
        bundles.append(str(out))
    for path, expr in [(b, "") for b in bundles]:
        out = subprocess.run([sys.executable, "-c", probe, path, expr], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
        grown, estimate = map(int, out.stdout.split())
        assert grown <= estimate, (path, expr, grown, estimate)
    assert token_count(b"function f(a){return a+1}") == 11  # function f ( a ) { return a + 1 }


def test_the_read_guard_stops_a_crafted_file_the_estimate_lets_through() -> None:
    """`[,,,…]` makes ~390 bytes of tree per token: under the estimate for a 64 MiB budget, ~150 MB
    of tree in fact. The RSS watch ends the parse: the process grows by the budget plus at most one
    64 KiB read slice's worth of tree."""
    probe = textwrap.dedent("""
        import resource
        from symbolicator.sourcemaps import scopes
        source = b'x=[' + b',' * 400000 + b'];'
        print(scopes.estimated_cost(source))
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            scopes.collect_scopes(source, 64 * 1024 * 1024)
            print("parsed")
        except scopes.NamesOverBudget as exc:
            print("skipped", (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    estimate, verdict, grown_mib = out.stdout.split()
    assert int(estimate) < 64 * MiB
    assert verdict == "skipped"
    assert int(grown_mib) <= 64 + 32, out.stdout


NAMES_BUDGET = 16 * MiB


async def test_a_file_over_the_name_budget_is_mapped_and_marked_the_other_keeps_its_names(tmp_path: Path) -> None:
    """16 MiB of name budget: app.min.js (a few KB) keeps its original function names; a 400 KB
    esbuild bundle whose tree is estimated at ~60 MB is mapped exactly, without names, marked."""
    big = esbuild_big_array(tmp_path / "build", 200_000)
    assert estimated_cost(big.read_bytes()) > NAMES_BUDGET > 20 * APP_COST
    line = big.read_text().split("\n")[0]
    columns0 = [line.index("return"), line.index("return") + len("return ")]
    want = trace_mapping(Path(f"{big}.map"), [(1, c) for c in columns0])
    app_names = expected_names(SCOPES / "app.min.js")
    app_rows = [(line0, col0) for (line0, col0), name in app_names.items() if name][::10][:40]
    with ServiceProcess(tmp_path, js_settings(tmp_path, {"js_names_max_memory_bytes": NAMES_BUDGET})) as svc:
        async with Website() as site:
            app_url = serve_fixture(site, "app.min.js")
            big_url = serve_big(site, big)
            app_frames = [{"abs_path": app_url, "lineno": l0 + 1, "colno": c0 + 1} for l0, c0 in app_rows]
            big_frames = [{"abs_path": big_url, "lineno": 1, "colno": c + 1, "function": "n"} for c in columns0]
            body = await symbolicate(svc, big_frames + app_frames)
    frames = body["stacktraces"][0]["frames"]
    mapped, app = frames[: len(big_frames)], frames[len(big_frames) :]
    for frame, expected in zip(mapped, want):
        assert frame["data"]["symbolicated"] is True and frame["data"]["function_names"] == "skipped", frame
        assert frame["abs_path"].endswith("/table.js"), frame
        assert (frame["lineno"], frame["colno"]) == (expected["line"], expected["column"] + 1), (frame, expected)
    agree = sum(f.get("function") == app_names[pos] for f, pos in zip(app, app_rows))
    assert agree >= 0.9 * len(app_rows), [(f.get("function"), app_names[p]) for f, p in zip(app, app_rows)]
    assert not any("function_names" in f["data"] for f in app)
    assert {e["type"] for e in body["errors"]} <= {"missing_source_content"}


# --- the workers' memory limit -------------------------------------------------------------------


def esbuild_big_array(work: Path, elements: int, element: str = "1") -> Path:
    """A real esbuild bundle: a small function, then an array literal of `elements` times `element`
    (`""`: holes, `[,,,…]`, the densest syntax tree known: ~390 bytes per comma)."""
    work.mkdir(parents=True, exist_ok=True)
    source = work / "table.js"
    source.write_text("export function lookupTable(index) {\n  const table = DATA;\n  return table[index] + 1;\n}\n\n"
                      f"const DATA = [{','.join([element] * elements)}];\n")
    out = work / "table.min.js"
    subprocess.run([str(ESBUILD), str(source), "--bundle", "--format=esm", "--minify", "--sourcemap",
                    f"--outfile={out}", "--log-level=error"], check=True)
    return out


def trace_mapping(map_path: Path, positions: list[tuple[int, int]]) -> list[dict[str, Any]]:
    """`originalPositionFor` of @jridgewell/trace-mapping (1-based lines, 0-based columns in and out)."""
    script = textwrap.dedent("""
        const { TraceMap, originalPositionFor } = require(process.argv[1]);
        const map = new TraceMap(require('fs').readFileSync(process.argv[2], 'utf8'));
        const out = JSON.parse(process.argv[3]).map(([line, column]) => originalPositionFor(map, { line, column }));
        console.log(JSON.stringify(out));
    """)
    out = subprocess.run(["node", "-e", script, str(NODE_MODULES / "@jridgewell" / "trace-mapping"), str(map_path),
                          json.dumps(positions)], capture_output=True, text=True, check=True)
    found: list[dict[str, Any]] = json.loads(out.stdout)
    return found


async def test_a_worker_over_its_memory_limit_fails_only_that_module_and_the_pool_recovers(
    tmp_path: Path,
) -> None:
    big = esbuild_big_array(tmp_path / "big", 1_000_000, element="")  # ~390 MB of tree, over the limit
    line = big.read_text().split("\n")[0]
    column0 = line.index("return") + len("return ")
    (want,) = trace_mapping(Path(f"{big}.map"), [(1, column0)])
    settings = js_settings(tmp_path, {"js_names_max_memory_bytes": 8 * 1024 * MiB,
                                      "worker_max_memory_bytes": 384 * MiB})
    with ServiceProcess(tmp_path, settings) as svc:
        async with Website() as site:
            big_url = serve_big(site, big)
            app_url = serve_fixture(site, "app.min.js")
            app_names = expected_names(SCOPES / "app.min.js")
            (app_pos, app_name), = [(p, n) for p, n in app_names.items() if n == "Cart.onChange"][:1]
            frames = [{"abs_path": big_url, "lineno": 1, "colno": column0 + 1},
                      {"abs_path": app_url, "lineno": app_pos[0] + 1, "colno": app_pos[1] + 1}]
            body = await symbolicate(svc, frames)
            again = await symbolicate(svc, frames[1:])
        log = svc.log()
    table, app = body["stacktraces"][0]["frames"]
    assert table["data"]["symbolicated"] is True and table["data"]["function_names"] == "skipped", (body, log)
    assert table["abs_path"].endswith("table.js") and (table["lineno"], table["colno"]) == (want["line"],
                                                                                         want["column"] + 1)
    assert app["function"] == app_name and "function_names" not in app["data"]
    assert again["stacktraces"][0]["frames"][0]["function"] == app_name
    assert "worker process died" in log and "converting without" in log


def test_config_refuses_a_worker_limit_too_small_to_start() -> None:
    from symbolicator.config import load_settings
    from symbolicator.errors import ConfigError

    with pytest.raises(ConfigError, match="worker_max_memory_bytes"):
        load_settings(env={}, overrides={"limits.worker_max_memory_bytes": 1024})
    assert load_settings(env={}, overrides={"limits.worker_max_memory_bytes": 0}).limits.worker_max_memory_bytes == 0


# --- bundle members over the size cap ------------------------------------------------------------


async def test_a_bundle_member_over_the_size_cap_fails_its_frames_not_the_request(tmp_path: Path) -> None:
    table = esbuild_big_array(tmp_path / "build", 400_000)  # ~800 KB minified, ~2.8 MB map
    huge = esbuild_big_array(tmp_path / "huge", 600_000)  # ~1.2 MB minified
    dist = tmp_path / "dist"
    dist.mkdir()
    shutil.copy(huge, dist / "huge.min.js")
    for path in (table, Path(f"{table}.map"), SCOPES / "app.min.js", SCOPES / "app.min.js.map"):
        shutil.copy(path, dist / path.name)
    settings = js_settings(tmp_path, {}, fetch={"max_bytes": 1 * MiB})
    with ServiceProcess(tmp_path, settings) as svc:
        sentry_cli(svc, tmp_path, "sourcemaps", "upload", "--release", "1.0", "--url-prefix", "~/assets", "--wait",
                   str(dist))
        app_names = expected_names(SCOPES / "app.min.js")
        (app_pos, app_name), = [(p, n) for p, n in app_names.items() if n == "Cart.onChange"][:1]
        host = "https://shop.example.com/assets"
        frames = [{"abs_path": f"{host}/table.min.js", "lineno": 1, "colno": 30},
                  {"abs_path": f"{host}/huge.min.js", "lineno": 1, "colno": 30},
                  {"abs_path": f"{host}/app.min.js", "lineno": app_pos[0] + 1, "colno": app_pos[1] + 1}]
        body = await symbolicate(svc, frames, release="1.0", scraping={"enabled": False})
    table_frame, huge_frame, app = body["stacktraces"][0]["frames"]
    assert table_frame["data"]["symbolicated"] is False and huge_frame["data"]["symbolicated"] is False
    assert "context_line" in table_frame and "context_line" not in huge_frame  # the minified file was read
    assert app["function"] == app_name and app["data"]["symbolicated"] is True
    errors = {e["abs_path"].rsplit("/", 1)[1]: e for e in body["errors"]}
    assert errors["table.min.js"]["type"] == "missing_sourcemap", errors
    assert "'files/_/_/assets/table.min.js.map' is larger than 1048576 bytes" in errors["table.min.js"]["details"]
    assert errors["huge.min.js"]["type"] == "missing_source", errors
    assert "is larger than 1048576 bytes" in errors["huge.min.js"]["details"]
    assert "app.min.js" not in errors


# --- index maps --------------------------------------------------------------------------------


def index_map(counts: list[int]) -> bytes:
    """An index map of `len(counts)` sections, section i itself an index map of counts[i] one-mapping sections."""
    leaf = {"version": 3, "sources": ["a.js"], "names": [], "mappings": "AAAA"}
    line = 0
    outer = []
    for count in counts:
        inner = [{"offset": {"line": j, "column": 0}, "map": leaf} for j in range(count)]
        outer.append({"offset": {"line": line, "column": 0}, "map": {"version": 3, "sections": inner}})
        line += count
    return orjson.dumps({"version": 3, "sections": outer})


def test_an_index_map_over_the_section_cap_is_refused_before_any_section_is_decoded() -> None:
    flat = {"version": 3, "sections": [{"offset": {"line": i, "column": 0},
                                        "map": {"version": 3, "sources": ["a.js"], "mappings": "AAAA"}}
                                       for i in range(200_000)]}
    with pytest.raises(MalformedSourceMap, match=f"more than {MAX_SECTIONS} sections"):
        parse(orjson.dumps(flat))
    with pytest.raises(MalformedSourceMap, match=f"more than {MAX_SECTIONS} sections"):
        parse(index_map([MAX_SECTIONS // 2, MAX_SECTIONS // 2]))  # 2 + 10,000 sections over two levels
    sm = parse(index_map([3, 4]))
    assert len(sm.keys) == 7
