"""Requests shaped like Sentry's, answered as Symbolicator answers them (issue 13, items 1-4).

The esbuild fixture is uploaded by the real `sentry-cli` (release upload, default `~/` URL
prefix, and once under a local-path prefix); frame positions and the original positions
they must map to are `node --enable-source-maps`' own (`tests/fixtures/js/expected/esbuild.node.json`).
Each case here came back different from Symbolicator before (see docs/javascript.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from symbolicator.service.js.offline import symbolicate_trace
from tests.support.service import ServiceProcess, local_settings
from tests.support.tools import sentry_cli

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "tests" / "fixtures" / "js"
NODE = json.loads((JS / "expected/esbuild.node.json").read_text())["frames"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("js-parity")
    svc = ServiceProcess(work, local_settings(work, scope_aliases={"42": "acme/web"}))
    with svc:
        dist = work / "dist"
        shutil.copytree(JS / "out/esbuild", dist)
        # No `inject`: these files are found by URL only, as releases without debug ids are.
        sentry_cli(svc, work, "sourcemaps", "upload", "--release", "rn-1", "--wait", str(dist))
        sentry_cli(svc, work, "sourcemaps", "upload", "--release", "local-1", "--url-prefix", "~/srv/www",
                   "--wait", str(dist))
        yield svc


def post(svc: ServiceProcess, body: Any) -> dict[str, Any]:
    r = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "42"}, json=body, timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["status"] == "completed", (answer, svc.log())
    return answer


def node_frames(abs_path: str) -> list[dict[str, Any]]:
    return [{"abs_path": abs_path, "lineno": f["line"], "colno": f["column"]} for f in NODE]


def assert_mapped_as_node(frames: list[dict[str, Any]]) -> None:
    for got, want in zip(frames, NODE, strict=True):
        assert got["data"]["symbolicated"] is True, got
        assert got["abs_path"].endswith(want["original"]["file"].removeprefix("src/")), got
        assert (got["lineno"], got["colno"]) == (want["original"]["line"], want["original"]["column"])


def test_empty_host_urls_find_tilde_uploads(service: ServiceProcess) -> None:
    """`app:///app.js` (React Native, Electron, Capacitor) finds `~/app.js` and its map `~/app.js.map`."""
    body = post(service, {"release": "rn-1", "stacktraces": [{"frames": node_frames("app:///app.js")}]})
    assert body["errors"] == []
    frames = body["stacktraces"][0]["frames"]
    assert_mapped_as_node(frames)
    assert {f["data"]["sourcemap"] for f in frames} == {"app:///app.js.map"}
    assert {f["data"]["resolved_with"] for f in frames} == {"release"}
    assert {a["url"]: a["status"] for a in body["scraping_attempts"]} == {
        "app:///app.js": "not_attempted", "app:///app.js.map": "not_attempted"}


def test_local_file_paths_find_tilde_uploads_and_list_not_attempted(service: ServiceProcess) -> None:
    """A local path (a Node server, Electron's main process) is a candidate as `~` + path, as in Symbolicator."""
    body = post(service, {"release": "local-1", "stacktraces": [{"frames": node_frames("/srv/www/app.js")}]})
    assert body["errors"] == []
    assert_mapped_as_node(body["stacktraces"][0]["frames"])
    assert {a["url"]: a["status"] for a in body["scraping_attempts"]} == {
        "/srv/www/app.js": "not_attempted", "/srv/www/app.js.map": "not_attempted"}


def test_paths_that_are_not_urls_are_missing_source(service: ServiceProcess) -> None:
    """`http//example.com/a.js` is looked up like any path and reported `missing_source`, no attempt listed."""
    frame = {"abs_path": "http//example.com/a.js", "lineno": 1, "colno": 10}
    body = post(service, {"release": "rn-1", "stacktraces": [{"frames": [frame]}]})
    assert body["errors"] == [{"abs_path": "http//example.com/a.js", "type": "missing_source"}]
    assert body["scraping_attempts"] == []
    assert body["stacktraces"][0]["frames"][0]["data"]["symbolicated"] is False


def test_other_schemes_are_not_scraped(service: ServiceProcess) -> None:
    """A missing `app://` file: Symbolicator's `invalid_host` attempt, or `disabled` when scraping is off."""
    frame = {"abs_path": "app:///missing.bundle", "lineno": 1, "colno": 10}
    body = post(service, {"release": "rn-1", "stacktraces": [{"frames": [frame]}]})
    assert body["errors"] == [{"abs_path": "app:///missing.bundle", "type": "missing_source"}]
    assert body["scraping_attempts"] == [{"url": "app:///missing.bundle", "status": "failure",
                                          "reason": "invalid_host",
                                          "details": "`app` is not an allowed download scheme"}]
    body = post(service, {"release": "rn-1", "scraping": {"enabled": False},
                          "stacktraces": [{"frames": [frame]}]})
    assert body["errors"] == [{"abs_path": "app:///missing.bundle", "type": "scraping_disabled"}]
    assert body["scraping_attempts"] == [{"url": "app:///missing.bundle", "status": "failure", "reason": "disabled"}]


def test_dart_async_scopes_are_named_by_the_token_at_the_frame() -> None:
    """A `$async$…` scope (dart2js' async rewrite) names its frame by the token there, as Symbolicator does."""
    out = REPO / "tests/fixtures/js_dart/out"
    trace = subprocess.run(["node", str(out / "checkout.min.js")], capture_output=True, text=True, check=True,
                           timeout=60).stdout
    frames = [(int(m[1]), int(m[2])) for m in re.finditer(r"checkout\.min\.js:(\d+):(\d+)", trace)]
    script = ("const {TraceMap, originalPositionFor} = require('@jridgewell/trace-mapping');"
              "const map = new TraceMap(require('fs').readFileSync(process.argv[1], 'utf8'));"
              "console.log(JSON.stringify(JSON.parse(process.argv[2]).map(([line, column]) =>"
              " originalPositionFor(map, {line, column: column - 1}).name)));")
    names = json.loads(subprocess.run(["node", "-e", script, str(out / "checkout.min.js.map"), json.dumps(frames)],
                                      capture_output=True, text=True, check=True, timeout=60,
                                      env={**os.environ, "NODE_PATH": str(REPO / "node_modules")}).stdout)
    assert names[1] == "validate"  # the call inside the `$async$checkout` closure
    answer = json.loads(symbolicate_trace(trace, [out], as_json=True))
    got = [f.get("function") for f in reversed(answer["stacktraces"][0]["frames"])]
    assert got[:3] == ["validate", names[1], "checkout"]
