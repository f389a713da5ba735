"""`/symbolicate-js` against uploads made by the real sentry-cli, and bad input of every kind.

The service runs as a real process on local storage. The esbuild fixture is
injected and uploaded by the real `sentry-cli` (so its debug ids and bundle
manifest are sentry-cli's own), the scope fixture is uploaded without debug ids
for the release + URL path. Every expectation is recorded by independent tools
(`tests/fixtures/js/expected/*.json`: `@jridgewell/trace-mapping` and `node
--enable-source-maps`; `tests/fixtures/js_scopes/out/*/*.expected.json`: the
TypeScript compiler API) or read from the original sources; none comes from
this project's output.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest
import requests

from symbolicator.service.js.request import (
    fixup_webpack_filename,
    fold_function_name,
    function_name,
    generate_module,
    is_in_app,
)
from tests.support.service import LOOPBACK_FETCH, ServiceProcess, local_settings
from tests.support.tools import sentry_cli
from tests.support.websites import Website

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "tests" / "fixtures" / "js"
SCOPES = REPO / "tests" / "fixtures" / "js_scopes" / "out" / "esbuild"
BIN = REPO / "node_modules" / ".bin"
HOST = "https://shop.example.com"
MAP = json.loads((JS / "out/esbuild/app.js.map").read_text())
APP = (JS / "out/esbuild/app.js").read_bytes()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("js-service")
    svc = ServiceProcess(work, local_settings(work, scope_aliases={"42": "acme/web"}, fetch=LOOPBACK_FETCH))
    with svc:
        dist = work / "dist"
        shutil.copytree(JS / "out/esbuild", dist)
        sentry_cli(svc, work, "sourcemaps", "inject", str(dist))
        sentry_cli(svc, work, "sourcemaps", "upload", "--release", "1.0.0", "--wait", str(dist))
        scopes = work / "scopes"
        scopes.mkdir()
        for name in ("app.min.js", "app.min.js.map"):
            shutil.copy(SCOPES / name, scopes / name)
        sentry_cli(svc, work, "sourcemaps", "upload", "--release", "2.0.0", "--url-prefix", "~/assets", "--wait",
                   str(scopes))
        svc.injected = (dist / "app.js").read_text()  # type: ignore[attr-defined]
        yield svc


def post(svc: ServiceProcess, body: Any, scope: str = "42") -> dict[str, Any]:
    r = requests.post(f"{svc.url}/symbolicate-js", params={"scope": scope}, json=body, timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["status"] == "completed", (answer, svc.log())
    return answer


def injected(svc: ServiceProcess) -> tuple[str, int, list[str]]:
    """(debug id, lines sentry-cli inserted above the bundle, injected lines) of the uploaded bundle.

    The recorded expectations are for the bundle as esbuild wrote it; inject only
    adds whole lines above it (and a comment below), so they hold shifted down.
    """
    text: str = svc.injected  # type: ignore[attr-defined]
    lines = text.split("\n")
    first = APP.decode().split("\n")[0]
    return text.rsplit("//# debugId=", 1)[1].strip(), lines.index(first), lines


def test_debug_id_matches_trace_mapping_at_every_position(service: ServiceProcess) -> None:
    expected = json.loads((JS / "expected/esbuild.lookups.json").read_text())
    debug_id, shift, _ = injected(service)
    url = f"{HOST}/static/app.js"
    frames = [{"abs_path": url, "lineno": c[0] + shift, "colno": c[1]} for c in expected["cases"]]
    body = post(service, {"modules": [{"type": "sourcemap", "code_file": url, "debug_id": debug_id}],
                          "stacktraces": [{"frames": frames}], "options": {"apply_source_context": False}})
    out = body["stacktraces"][0]["frames"]
    assert len(out) == len(frames)
    unmapped = 0
    for case, frame in zip(expected["cases"], out):
        if case[2] is None:
            unmapped += 1
            assert frame["abs_path"] == url and frame["data"] == {"symbolicated": False}
            continue
        source = expected["sources"][case[2]].removeprefix("../")
        assert frame["abs_path"] == f"{HOST}/{source}", (case, frame)
        assert (frame["lineno"], frame["colno"]) == (case[3], case[4]), (case, frame)
        assert frame["data"]["resolved_with"] == "debug-id"
        assert frame["data"]["sourcemap"] == f"{HOST}/static/app.js.map"
    assert {e["type"] for e in body["errors"]} <= {"invalid_location"}
    assert len(body["errors"]) == unmapped


def test_node_frames_with_source_context_by_debug_id_and_by_release(service: ServiceProcess) -> None:
    node = json.loads((JS / "expected/esbuild.node.json").read_text())["frames"]
    debug_id, shift, minified = injected(service)
    url = f"{HOST}/app.js?v=3"
    frames = [{"abs_path": url, "lineno": f["line"] + shift, "colno": f["column"], "function": "x"} for f in node]
    by_id = post(service, {"modules": [{"type": "sourcemap", "code_file": url, "debug_id": debug_id}],
                           "stacktraces": [{"frames": frames}]})
    by_release = post(service, {"release": "1.0.0", "stacktraces": [{"frames": frames}]})
    for body in (by_id, by_release):
        assert body["errors"] == []
        assert not [a for a in body["scraping_attempts"] if a["status"] != "not_attempted"]
        for expect, frame, raw in zip(node, body["stacktraces"][0]["frames"], body["raw_stacktraces"][0]["frames"]):
            original = expect["original"]
            lines = (JS / original["file"]).read_text().splitlines()
            assert frame["abs_path"] == f"{HOST}/{original['file']}"
            assert (frame["lineno"], frame["colno"]) == (original["line"], original["column"])
            assert frame["context_line"] == lines[original["line"] - 1]
            assert frame["pre_context"] == lines[original["line"] - 6 : original["line"] - 1]
            assert frame["post_context"] == lines[original["line"] : original["line"] + 5]
            assert frame["data"]["symbolicated"] is True
            assert frame["data"]["resolved_with"] == "debug-id"
            line = minified[expect["line"] + shift - 1]
            assert raw["lineno"] == expect["line"] + shift and raw["data"] == {"symbolicated": False}
            assert raw["function"] == "x" and raw["abs_path"] == url
            assert line[expect["column"] - 1 : expect["column"] + 20] in raw["context_line"]
            assert raw["context_line"].startswith("{snip} ") and len(raw["context_line"]) < 160
            assert raw["post_context"][0] == "//# sourceMappingURL=app.js.map"
    assert by_id["stacktraces"][0]["frames"][0]["function"] == "Cart.checkout"


def test_release_and_url_with_original_function_names(service: ServiceProcess) -> None:
    expected = json.loads((SCOPES / "app.min.js.expected.json").read_text())["frames"]
    url = "https://cdn.example.org/assets/app.min.js"
    frames = [{"abs_path": url, "lineno": line0 + 1, "colno": col0 + 1} for line0, col0, *_ in expected]
    body = post(service, {"release": "2.0.0", "stacktraces": [{"frames": frames}]}, scope="acme/web")
    assert body["errors"] == []
    named = [(e[2], f.get("function")) for e, f in zip(expected, body["stacktraces"][0]["frames"]) if e[2]]
    agree = sum(want == got for want, got in named)
    assert agree >= 0.95 * len(named), [p for p in named if p[0] != p[1]]
    frame = body["stacktraces"][0]["frames"][0]
    assert frame["data"]["resolved_with"] == "release" and frame["data"]["sourcemap"] == url + ".map"
    assert body["used_artifact_bundles"]

    wrong = post(service, {"release": "9.9.9", "stacktraces": [{"frames": frames[:1]}],
                           "scraping": {"enabled": False}}, scope="acme/web")
    assert wrong["errors"] == [{"abs_path": url, "type": "scraping_disabled"}]
    other_scope = post(service, {"release": "2.0.0", "stacktraces": [{"frames": frames[:1]}],
                                 "scraping": {"enabled": False}}, scope="other/web")
    assert other_scope["stacktraces"][0]["frames"][0]["data"] == {"symbolicated": False}


async def test_frame_level_bad_input_never_fails_the_request(service: ServiceProcess) -> None:
    def variant(**changes: Any) -> bytes:
        return json.dumps({**MAP, **changes}).encode()

    maps = {
        "notjson": b"{this is not json",
        "version": variant(version=2),
        "base64": variant(mappings="AAAA,!!!!;AACA"),
        "vlq": variant(mappings="AAAA,gggggggggggggggggggggggggggggA"),
        "sources": variant(sources=[], sourcesContent=[]),
        "names": variant(names=[]),
        "array": b"[1, 2, 3]",
    }

    async def run() -> tuple[dict[str, Any], Website]:
        async with Website() as site:
            for name, data in maps.items():
                site.add_body(f"/{name}/app.js", APP)
                site.add_body(f"/{name}/app.js.map", data, content_type="application/json")
            site.add_body("/data/app.js", APP.replace(b"sourceMappingURL=app.js.map",
                                                      b"sourceMappingURL=data:application/json;base64,@@@not-b64"))
            site.add_body("/good/app.js", APP)
            site.add_body("/good/app.js.map", json.dumps(MAP).encode())
            frames = [{"abs_path": site.url(f"/{n}/app.js"), "lineno": 1, "colno": 516} for n in [*maps, "data"]]
            good = site.url("/good/app.js")
            frames += [
                {"abs_path": good, "lineno": 0, "colno": 516},
                {"abs_path": good, "lineno": 1, "colno": 10**12},
                {"abs_path": good, "lineno": 1, "colno": 0},
                {"abs_path": good, "lineno": 99999, "colno": 1},
                {"abs_path": good, "lineno": 1},
                {"abs_path": "<anonymous>", "lineno": 1, "colno": 1},
                {"abs_path": "", "lineno": 1, "colno": 1},
                {"lineno": 1, "colno": 1},
                {"abs_path": good, "lineno": 1, "colno": 516},
            ]
            async with aiohttp.ClientSession() as session:
                async with session.post(f"{service.url}/symbolicate-js", json={"stacktraces": [{"frames": frames}]},
                                        params={"scope": "global"}) as r:
                    assert r.status == 200
                    return await r.json(), site

    body, site = await run()
    assert body["status"] == "completed", service.log()
    out = body["stacktraces"][0]["frames"]
    assert len(out) == len(maps) + 1 + 9
    assert all(f["data"]["symbolicated"] is False for f in out[:-1])
    assert out[-1]["data"]["symbolicated"] is True
    errors = {(e["abs_path"], e["type"], e.get("url"), e.get("line"), e.get("col")) for e in body["errors"]}
    for name in maps:
        url = site.url(f"/{name}/app.js")
        assert (url, "malformed_sourcemap", url + ".map", None, None) in errors, name
    assert (site.url("/data/app.js"), "invalid_base64_sourcemap", None, None, None) in errors
    good = site.url("/good/app.js")
    assert (good, "invalid_location", None, 0, 516) in errors
    assert (good, "invalid_location", None, 1, 10**12) in errors
    assert (good, "invalid_location", None, 1, 0) in errors
    assert (good, "invalid_location", None, 99999, 1) in errors
    assert (good, "no_column", None, None, None) in errors
    assert ("<anonymous>", "invalid_abs_path", None, None, None) in errors
    assert (None, "invalid_abs_path", None, None, None) in errors
    assert ("", "invalid_abs_path", None, None, None) in errors


def test_body_errors_are_400_and_422(service: ServiceProcess) -> None:
    url = f"{service.url}/symbolicate-js"
    r = requests.post(url, data=b"{not json", timeout=10)
    assert r.status_code == 400 and "detail" in r.json()
    for bad in ([], {"stacktraces": "x"}, {"stacktraces": [{"frames": [{"abs_path": "x", "lineno": "3"}]}]},
                {"stacktraces": [{"frames": [1]}]}, {"modules": [{"type": "sourcemap", "code_file": 1}]},
                {"options": {"frame_order": "sideways"}}, {"release": 5}):
        r = requests.post(url, json=bad, timeout=10)
        assert r.status_code == 422, (bad, r.text)
        assert "detail" in r.json()


async def test_ignore_list_webpack_names_and_originals_fetched_without_sources_content(service: ServiceProcess) -> None:
    def case(fixture: str, source: int) -> list[Any]:
        cases = json.loads((JS / f"expected/{fixture}.lookups.json").read_text())["cases"]
        return next(c for c in cases if c[2] == source)

    no_content = json.dumps({**MAP, "sourcesContent": None}).encode()
    node = json.loads((JS / "expected/esbuild.node.json").read_text())["frames"][0]
    async with Website() as site:
        for fixture in ("rollup", "webpack"):
            site.add_body(f"/{fixture}/app.js", (JS / f"out/{fixture}/app.js").read_bytes())
            site.add_body(f"/{fixture}/app.js.map", (JS / f"out/{fixture}/app.js.map").read_bytes())
        site.add_body("/plain/app.js", APP)
        site.add_body("/plain/app.js.map", no_content)
        site.add_body("/src/shop/cart.ts", (JS / "src/shop/cart.ts").read_bytes())
        site.add_body("/a/b/c/app.js", APP)
        site.add_body("/a/b/c/app.js.map", no_content)
        frames = [{"abs_path": site.url(f"/{fixture}/app.js"), "lineno": c[0], "colno": c[1]}
                  for fixture in ("rollup", "webpack") for c in (case(fixture, 0), case(fixture, 1))]
        frames += [{"abs_path": site.url(f"{p}/app.js"), "lineno": node["line"], "colno": node["column"]}
                   for p in ("/plain", "/a/b/c")]
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{service.url}/symbolicate-js", json={"stacktraces": [{"frames": frames}]},
                                    params={"scope": "global"}) as r:
                body = await r.json()
    assert body["status"] == "completed", service.log()
    rollup_app, rollup_vendor, webpack_app, webpack_vendor, fetched, lost = body["stacktraces"][0]["frames"]
    assert rollup_vendor["in_app"] is False and rollup_vendor["abs_path"].endswith("/src/greet/vendor/pad.js")
    assert "in_app" not in rollup_app and rollup_app["data"]["symbolicated"] is True
    # Symbolicator keeps a `webpack:` source as the map gives it, `./` included (Sentry matches on it).
    webpack_sources = json.loads((JS / "out/webpack/app.js.map").read_text())["sources"]
    assert webpack_app["abs_path"] == "webpack://greet/./src/greet/main.js" and webpack_app["abs_path"] in webpack_sources
    assert webpack_app["filename"] == "./src/greet/main.js" and webpack_app["module"] == "src/greet/main"
    assert webpack_app["in_app"] is True and webpack_vendor["filename"] == "./src/greet/vendor/pad.js"
    cart = (JS / "src/shop/cart.ts").read_text().splitlines()
    assert fetched["abs_path"] == site.url("/src/shop/cart.ts") and fetched["lineno"] == 44
    assert fetched["context_line"] == cart[43] and fetched["pre_context"] == cart[38:43]
    assert lost["abs_path"] == site.url("/a/src/shop/cart.ts") and "context_line" not in lost
    assert lost["data"]["symbolicated"] is True
    assert body["errors"] == [{"abs_path": site.url("/a/b/c/app.js"), "type": "missing_source_content",
                               "source": site.url("/a/src/shop/cart.ts"), "sourcemap": site.url("/a/b/c/app.js.map")}]


def cache_counter(svc: ServiceProcess, name: str, cache: str) -> float:
    text = requests.get(f"{svc.url}/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(f'symbolicator_cache_{name}{{cache="{cache}"}}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no {name} for {cache} in /metrics")


async def test_concurrent_events_for_one_uploaded_map_cause_one_download_and_one_conversion(
        service: ServiceProcess, tmp_path: Path) -> None:
    dist = tmp_path / "terser"
    shutil.copytree(JS / "out/terser", dist)
    sentry_cli(service, tmp_path, "sourcemaps", "upload", "--release", "3.0.0", "--url-prefix", "~/t", "--wait",
               str(dist))
    expected = json.loads((JS / "expected/terser.lookups.json").read_text())
    case = next(c for c in expected["cases"] if c[2] is not None)
    frame = {"abs_path": "https://shop.example.com/t/app.js", "lineno": case[0], "colno": case[1]}
    before = {(n, c): cache_counter(service, n, c) for n in ("misses", "entries") for c in ("downloads", "derived")}

    async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
        async with session.post(f"{service.url}/symbolicate-js", params={"scope": "42"},
                                json={"release": "3.0.0", "stacktraces": [{"frames": [frame]}]}) as r:
            return dict(await r.json())

    async with aiohttp.ClientSession() as session:
        answers = await asyncio.gather(*(one(session) for _ in range(30)))
    for answer in answers:
        out = answer["stacktraces"][0]["frames"][0]
        assert answer["status"] == "completed" and out["data"]["symbolicated"] is True, answer
        assert (out["lineno"], out["colno"]) == (case[3], case[4])
    after = {key: cache_counter(service, *key) for key in before}
    assert after[("misses", "derived")] - before[("misses", "derived")] == 1
    assert after[("entries", "derived")] - before[("entries", "derived")] == 1
    assert after[("misses", "downloads")] - before[("misses", "downloads")] == 1
    assert after[("entries", "downloads")] - before[("entries", "downloads")] == 1


# Naming helpers: the cases of Symbolicator's own tests (crates/symbolicator-js/src/utils.rs).
FOLDED = [("foo", "foo"), ("foo.foo", "foo.foo"), ("foo.foo.foo", "{foo#2}.foo"), ("bar.foo.foo", "bar.foo.foo"),
          ("bar.foo.foo.foo", "bar.{foo#2}.foo"), ("bar.foo.foo.onError", "bar.{foo#2}.onError"),
          ("bar.bar.bar.foo.foo.onError", "{bar#3}.{foo#2}.onError"),
          ("bar.foo.foo.bar.bar.onError", "bar.{foo#2}.{bar#2}.onError")]
H40, H32 = "92cd589eca8235e7b373bf5ae94ebf898e3b949c", "7d6d00eae0ceccdc7ee689659585d95f"
MODULES = [
    ("http://example.com/foo.js", "foo"), ("http://example.com/foo/bar.js", "foo/bar"),
    ("http://example.com/js/foo/bar.js", "foo/bar"), ("http://example.com/javascript/foo/bar.js", "foo/bar"),
    ("http://example.com/1.0/foo/bar.js", "foo/bar"), ("http://example.com/v1/foo/bar.js", "foo/bar"),
    ("http://example.com/v1.0.0/foo/bar.js", "foo/bar"), ("http://example.com/_baz/foo/bar.js", "foo/bar"),
    ("http://example.com/1/2/3/foo/bar.js", "foo/bar"), ("http://example.com/abcdef0/foo/bar.js", "foo/bar"),
    (f"http://example.com/{H40}/foo/bar.js", "foo/bar"), (f"http://example.com/{H32}/foo/bar.js", "foo/bar"),
    ("http://example.com/foo/bar.coffee", "foo/bar"), ("http://example.com/foo/bar.js?v=1234", "foo/bar"),
    ("/foo/bar.js", "foo/bar"), ("/foo/bar.ts", "foo/bar"), ("../../foo/bar.js", "foo/bar"),
    ("../../foo/bar.ts", "foo/bar"), ("../../foo/bar.awesome", "foo/bar"), ("../../foo/bar", "foo/bar"),
    (f"/foo/bar-{H32}.js", "foo/bar"), ("/bower_components/foo/bar.js", "foo/bar"),
    ("/node_modules/foo/bar.js", "foo/bar"), (f"http://example.com/vendor.{H40}.js", "vendor"),
    ("/a/javascripts/application-bundle-149360d3414c26adac3febdf6832e25c.min.js", "a/javascripts/application-bundle"),
    ("https://example.com/libs/libs-20150417171659.min.js", "libs/libs"), (f"webpack:///{H40}/vendor.js", "vendor"),
    (f"app:///{H40}/vendor.js", "vendor"), (f"app:///example/{H40}/vendor.js", "vendor"),
    ("~/app/components/projectHeader/projectSelector.jsx", "app/components/projectHeader/projectSelector"),
]
IN_APP = [
    ("webpack:///../node_modules/@sentry/browser/esm/helpers.js", "../node_modules/@sentry/browser/esm/helpers.js",
     False),
    ("webpack:///~/@sentry/browser/esm/helpers.js", "~/@sentry/browser/esm/helpers.js", False),
    ("webpack:///./@sentry/browser/esm/helpers.js", "./@sentry/browser/esm/helpers.js", True),
    ("webpack:///./node_modules/@sentry/browser/esm/helpers.js", "./node_modules/@sentry/browser/esm/helpers.js",
     False),
    ("app:///../node_modules/@sentry/browser/esm/helpers.js", "../node_modules/@sentry/browser/esm/helpers.js", False),
    ("app:///../@sentry/browser/esm/helpers.js", "../@sentry/browser/esm/helpers.js", True),
    ("app:///node_modules/rxjs/internal/operators/switchMap.js", "node_modules/rxjs/internal/operators/switchMap.js",
     False),
    ("file:///../node_modules/@sentry/browser/esm/helpers.js", "../node_modules/@sentry/browser/esm/helpers.js", False),
    ("file:///../@sentry/browser/esm/helpers.js", "../@sentry/browser/esm/helpers.js", None),
]


@pytest.mark.parametrize("name,folded", FOLDED)
def test_fold_function_name(name: str, folded: str) -> None:
    assert fold_function_name(name) == folded


@pytest.mark.parametrize("abs_path,module", MODULES)
def test_generate_module(abs_path: str, module: str) -> None:
    assert generate_module(abs_path) == module


@pytest.mark.parametrize("abs_path,filename,in_app", IN_APP)
def test_in_app(abs_path: str, filename: str, in_app: bool | None) -> None:
    assert is_in_app(abs_path, filename) is in_app


def test_function_names_and_webpack_filenames() -> None:
    assert function_name("original", "lookedup", None) == "lookedup"
    assert function_name(None, "__webpack_require__", "previous_name") == "previous_name"
    assert function_name(None, "__webpack_require__", None) == "__webpack_require__"
    assert function_name("original", "__webpack_require__", None) == "original"
    assert function_name("e", None, "onClick") == "onClick"
    assert function_name(None, None, None) is None
    assert fixup_webpack_filename("webpack:///../node_modules/@sentry/browser/esm/helpers.js") == \
        "../node_modules/@sentry/browser/esm/helpers.js"
    assert fixup_webpack_filename("webpack:///./app/utils/requestError/createRequestError.tsx") == \
        "./app/utils/requestError/createRequestError.tsx"
