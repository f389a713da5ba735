"""React Native as Sentry's SDK sends it: a Metro bundle and its Hermes bytecode, uploaded by sentry-cli.

Fixtures (`tests/fixtures/rn/`, `build.sh`): a small React-Native-shaped app bundled by Metro 0.87 and
compiled by `hermesc` 0.12, the Hermes map composed with Metro's by `metro-source-map`. Expectations
come from running the code (node for the JS bundle, the Hermes 0.12 VM for the bytecode) and from
`metro-symbolicate`, never from this project; `test_expectations_are_current` re-derives them.

Uploads go through `sentry-cli react-native gradle`, the command React Native's Android build runs.
Frames are sent as the React Native SDK sends them: `app:///index.android.bundle`, caller first;
Hermes frames on line 1 with `colno` = bytecode offset + 1.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from tests.support.service import LOOPBACK_FETCH, ServiceProcess, local_settings
from tests.support.tools import sentry_cli
from tests.support.websites import Website

REPO = Path(__file__).resolve().parent.parent
RN = REPO / "tests" / "fixtures" / "rn"
BUNDLE = "index.android.bundle"
ABS_PATH = f"app:///{BUNDLE}"


def expected(kind: str) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = json.loads((RN / "expected" / f"{kind}.json").read_text())["frames"]
    return frames


def below_repo(source: str) -> str:
    """An expected source (relative to the fixture folder) as the path below the repository root."""
    return os.path.relpath(os.path.normpath(RN / source), REPO)


def upload(svc: ServiceProcess, work: Path, kind: str, release: str, *args: str) -> None:
    """out/<kind> uploaded by sentry-cli: `react-native gradle` (React Native's Android build), or `args`."""
    folder = work / release
    shutil.copytree(RN / "out" / kind, folder)
    if args:
        sentry_cli(svc, work, *args, "--release", release, "--dist", "1", "--wait", str(folder))
    else:
        sentry_cli(svc, work, "react-native", "gradle", "--bundle", str(folder / BUNDLE), "--sourcemap",
                   str(folder / f"{BUNDLE}.map"), "--release", release, "--dist", "1", "--wait")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("react-native")
    svc = ServiceProcess(work, local_settings(work, scope_aliases={"42": "acme/web"}, fetch=LOOPBACK_FETCH))
    with svc:
        # sentry-cli's default rewrite flattens Metro's index map and drops its function maps: `--no-rewrite`
        # keeps Metro's map as written. For Hermes it keeps them (the composed map is a regular one), but
        # uploads the bytecode as an empty file and drops `x_hermes_function_offsets`.
        upload(svc, work, "metro", "rn-js", "sourcemaps", "upload", "--no-rewrite")
        upload(svc, work, "hermes", "rn-hermes")
        yield svc


def symbolicate(svc: ServiceProcess, release: str, frames: list[dict[str, Any]]) -> dict[str, Any]:
    body = {"release": release, "dist": "1", "stacktraces": [{"frames": frames}]}
    r = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "42"}, json=body, timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["status"] == "completed", (answer, svc.log())
    return answer


def hermes_frames(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Caller first, as the SDK sends them: line 1, colno = bytecode offset + 1."""
    return [{"abs_path": ABS_PATH, "lineno": 1, "colno": f["offset"] + 1, "function": f["engine_function"],
             "platform": "javascript"} for f in reversed(frames)]


def assert_as_metro_symbolicate(got: list[dict[str, Any]], want: list[dict[str, Any]]) -> None:
    for frame, exp in zip(reversed(got), want, strict=True):
        original = exp["original"]
        assert frame["data"]["symbolicated"] is True, frame
        assert frame["abs_path"].endswith("/" + below_repo(original["source"])), frame
        assert (frame["lineno"], frame["colno"]) == (original["line"], original["column"]), (frame, original)
        assert frame["function"] == original["function"], (frame, original)


def test_expectations_are_current(tmp_path: Path) -> None:
    """node, the Hermes VM and metro-symbolicate, run again on the committed bundles, say the same."""
    subprocess.run(["node", str(RN / "record.js"), str(RN / "out"), str(tmp_path)], check=True, timeout=120)
    for kind in ("metro", "hermes"):
        assert json.loads((tmp_path / f"{kind}.json").read_text()) == json.loads(
            (RN / "expected" / f"{kind}.json").read_text())


def test_bytecode_and_plain_js_crash_in_the_same_original_places() -> None:
    """The same code run as JS (V8) and as bytecode (Hermes) maps to the same functions and lines."""
    metro, hermes = expected("metro"), expected("hermes")
    assert len(metro) == len(hermes) >= 6
    for js, hbc in zip(metro, hermes, strict=True):
        assert (js["original"]["source"], js["original"]["line"], js["original"]["function"]) == (
            hbc["original"]["source"], hbc["original"]["line"], hbc["original"]["function"])
    assert [f["original"]["function"] for f in hermes[:4]] == [
        "items.reduce$argument_0", "CartStore#total", "formatTotal", "CheckoutScreen#onPressPay"]


def test_metro_bundle_frames_named_by_function_maps(service: ServiceProcess) -> None:
    want = expected("metro")
    frames = [{"abs_path": ABS_PATH, "lineno": f["line"], "colno": f["column"], "function": f["engine_function"]}
              for f in reversed(want)]
    body = symbolicate(service, "rn-js", frames)
    assert body["errors"] == []
    assert_as_metro_symbolicate(body["stacktraces"][0]["frames"], want)


def test_hermes_bytecode_frames(service: ServiceProcess) -> None:
    want = expected("hermes")
    body = symbolicate(service, "rn-hermes", hermes_frames(want))
    assert body["errors"] == []
    frames = body["stacktraces"][0]["frames"]
    assert_as_metro_symbolicate(frames, want)
    assert {f["data"]["sourcemap"] for f in frames} == {f"{ABS_PATH}.map"}
    assert all("context_line" not in f for f in body["raw_stacktraces"][0]["frames"])  # no bytecode as "source"
    cart = (RN / "src/cart.js").read_text().splitlines()
    assert frames[-1]["context_line"] == cart[20]


def without_offsets(sourcemap: dict[str, Any]) -> None:
    del sourcemap["x_hermes_function_offsets"]


def offsets_past_the_end(sourcemap: dict[str, Any]) -> None:
    sourcemap["x_hermes_function_offsets"]["0"].append((RN / "out/hermes" / BUNDLE).stat().st_size + 16)


def function_map_of_wrong_shape(sourcemap: dict[str, Any]) -> None:
    """Segments of 4 fields and a name index past `names`."""
    sourcemap["x_facebook_sources"][-1] = [{"names": ["CartStore"], "mappings": "AAAA;AEA"}]


def unchanged(sourcemap: dict[str, Any]) -> None:
    return None


async def served(service: ServiceProcess, edit: Callable[[dict[str, Any]], None],
                 frames: Callable[[str], list[dict[str, Any]]]) -> dict[str, Any]:
    """The bytecode bundle as the app's server sends it (bytes intact, map named by a `SourceMap` header),
    its map edited by `edit`; `frames(abs_path)` symbolicated with scraping."""
    sourcemap = json.loads((RN / "out/hermes" / f"{BUNDLE}.map").read_text())
    edit(sourcemap)
    async with Website() as site:
        site.add_body(f"/{BUNDLE}", (RN / "out/hermes" / BUNDLE).read_bytes(),
                      headers={"SourceMap": f"{BUNDLE}.map"})
        site.add_body(f"/{BUNDLE}.map", json.dumps(sourcemap).encode(), content_type="application/json")
        body = {"stacktraces": [{"frames": frames(site.url(f"/{BUNDLE}"))}]}
        async with aiohttp.ClientSession() as session, session.post(
                f"{service.url}/symbolicate-js", params={"scope": "42"}, json=body) as r:
            assert r.status == 200, await r.text()
            answer: dict[str, Any] = await r.json()
    assert answer["status"] == "completed", (answer, service.log())
    return answer


async def test_bytecode_served_with_its_map_and_offsets(service: ServiceProcess) -> None:
    """With the bytecode at hand, a frame past its end or on another segment is an `invalid_location`."""
    want = expected("hermes")
    size = (RN / "out/hermes" / BUNDLE).stat().st_size

    def frames(url: str) -> list[dict[str, Any]]:
        return [{**f, "abs_path": url} for f in hermes_frames(want)] + [
            {"abs_path": url, "lineno": 1, "colno": size + 1}, {"abs_path": url, "lineno": 2, "colno": 100}]

    body = await served(service, unchanged, frames)
    url = body["stacktraces"][0]["frames"][-1]["abs_path"]
    assert sorted(body["errors"], key=lambda e: e["line"]) == [
        {"abs_path": url, "type": "invalid_location", "line": 1, "col": size + 1},
        {"abs_path": url, "type": "invalid_location", "line": 2, "col": 100}]
    assert_as_metro_symbolicate(body["stacktraces"][0]["frames"][: len(want)], want)


@pytest.mark.parametrize("edit", [without_offsets, offsets_past_the_end, function_map_of_wrong_shape])
async def test_broken_react_native_maps_are_per_frame_errors(service: ServiceProcess,
                                                             edit: Callable[[dict[str, Any]], None]) -> None:
    want = expected("hermes")
    body = await served(service, edit, lambda url: [{**f, "abs_path": url} for f in hermes_frames(want)])
    url = body["stacktraces"][0]["frames"][0]["abs_path"]
    assert body["errors"] == [{"abs_path": url, "type": "malformed_sourcemap", "url": f"{url}.map"}]
    assert [f["data"]["symbolicated"] for f in body["stacktraces"][0]["frames"]] == [False] * len(want)
    assert symbolicate(service, "rn-hermes", hermes_frames(want))["errors"] == []  # the service goes on serving


# --- `symbolicator upload` picks up React Native bundles with their maps ------------------------


def our_upload(svc: ServiceProcess, work: Path, kind: str, release: str, *paths: str) -> str:
    """out/<kind> as React Native's build leaves it, uploaded by `symbolicator upload FOLDER`."""
    folder = work / f"ours-{release}"
    shutil.copytree(RN / "out" / kind, folder)
    run = subprocess.run([sys.executable, "-m", "symbolicator", "upload", "--url", svc.url, "--scope", "acme/web",
                          "--release", release, "--dist", "1", "--wait", "--no-progress",
                          *(str(folder / p) for p in paths or ("",))],
                         capture_output=True, text=True, timeout=120, check=False,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


@pytest.mark.parametrize("paths", [(), (BUNDLE, f"{BUNDLE}.map")], ids=["folder", "files"])
def test_our_upload_of_a_metro_bundle_names_frames_as_metro(service: ServiceProcess, tmp_path: Path,
                                                             paths: tuple[str, ...]) -> None:
    release = f"rn-js-ours-{len(paths)}"
    out = our_upload(service, tmp_path, "metro", release, *paths)
    assert "(2 files" in out, out
    want = expected("metro")
    frames = [{"abs_path": ABS_PATH, "lineno": f["line"], "colno": f["column"], "function": f["engine_function"]}
              for f in reversed(want)]
    body = symbolicate(service, release, frames)
    assert body["errors"] == []
    assert_as_metro_symbolicate(body["stacktraces"][0]["frames"], want)


def test_our_upload_of_hermes_bytecode_pairs_it_with_its_map(service: ServiceProcess, tmp_path: Path) -> None:
    """Bytecode has no `sourceMappingURL` comment: the map beside it (`index.android.bundle.map`) is
    its map, as `sentry-cli react-native gradle --bundle … --sourcemap …` declares it."""
    our_upload(service, tmp_path, "hermes", "rn-hermes-ours")
    want = expected("hermes")
    body = symbolicate(service, "rn-hermes-ours", hermes_frames(want))
    assert body["errors"] == []
    frames = body["stacktraces"][0]["frames"]
    assert_as_metro_symbolicate(frames, want)
    assert {f["data"]["sourcemap"] for f in frames} == {f"{ABS_PATH}.map"}


# --- Hermes bytecode in several segments (`hermesc -commonjs`, out/segments/) -------------------

SEGMENTS = RN / "out" / "segments"


def segment_frames() -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = json.loads((RN / "expected" / "segments.json").read_text())["frames"]
    return frames


@pytest.mark.skipif(not (REPO / "node_modules" / "hermes-engine-cli").is_dir(),
                    reason="needs the repository's node_modules (npm ci)")
def test_segment_expectations_are_current(tmp_path: Path) -> None:
    """The Hermes VM, hbcdump and metro-symbolicate, run again on the committed segments, say the same."""
    subprocess.run(["node", str(RN / "record_segments.js"), str(RN / "out"), str(tmp_path / "segments.json")],
                   check=True, timeout=120)
    assert json.loads((tmp_path / "segments.json").read_text()) == {
        **json.loads((RN / "expected" / "segments.json").read_text())}


def test_the_segments_fixture_has_two_segments_past_each_other() -> None:
    """What makes it a test: offsets of segment 1 beyond segment 0's size, frames in both."""
    offsets = json.loads((SEGMENTS / f"{BUNDLE}.map").read_text())["x_hermes_function_offsets"]
    assert sorted(offsets) == ["0", "1"]
    assert max(offsets["1"]) >= (SEGMENTS / BUNDLE).stat().st_size
    assert {f["segment"] for f in segment_frames()} == {0, 1}


async def test_frames_of_every_segment_resolve_through_the_one_map(service: ServiceProcess) -> None:
    """Line N + 1 is segment N, as in hermesc's map; segment 1's offsets are not segment 0's size."""
    want = segment_frames()
    async with Website() as site:
        site.add_body(f"/{BUNDLE}", (SEGMENTS / BUNDLE).read_bytes(), headers={"SourceMap": f"{BUNDLE}.map"})
        site.add_body(f"/{BUNDLE}.map", (SEGMENTS / f"{BUNDLE}.map").read_bytes(), content_type="application/json")
        for source in ("main.js", "lazy.js"):  # the map has no sourcesContent: the originals are on the site
            site.add_body(f"/{source}", (RN / "segments" / source).read_bytes())
        url = site.url(f"/{BUNDLE}")
        frames = [{"abs_path": url, "lineno": f["segment"] + 1, "colno": f["offset"] + 1,
                   "function": f["engine_function"]} for f in reversed(want)]
        frames.append({"abs_path": url, "lineno": 3, "colno": 1})  # no segment 2
        async with aiohttp.ClientSession() as session, session.post(
                f"{service.url}/symbolicate-js", params={"scope": "42"},
                json={"stacktraces": [{"frames": frames}]}) as r:
            assert r.status == 200, await r.text()
            body: dict[str, Any] = await r.json()
    assert body["errors"] == [{"abs_path": url, "type": "invalid_location", "line": 3, "col": 1}], body["errors"]
    got = body["stacktraces"][0]["frames"][:-1]
    for frame, exp in zip(reversed(got), want, strict=True):
        original = exp["original"]
        assert frame["data"]["symbolicated"] is True, (frame, exp)
        assert frame["abs_path"].endswith("/" + original["source"]), (frame, exp)
        assert (frame["lineno"], frame["colno"]) == (original["line"], original["column"]), (frame, exp)
        lines = (RN / "segments" / original["source"]).read_text().splitlines()
        assert frame["context_line"] == lines[original["line"] - 1], frame
