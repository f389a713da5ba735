"""Original function names from originals fetched apart from their map (docs/javascript.md, step 2).

The bundles are real rollup + `@rollup/plugin-terser` and webpack 5 production output whose maps
carry NO `sourcesContent` (`sourcemapExcludeSources`, `nosources-source-map`:
`node tests/fixtures/js_scopes/build.js --nosources`). terser inlined and moved code in them, so
the minified scope of many frames is the caller the code was inlined into. The expectations
are the functions enclosing each frame's original position, computed by the TypeScript compiler
API over the original files in `tests/fixtures/js_scopes/src/`, for the frames of real V8 stack
traces (node running the bundle): nothing here comes from this project's output.

Each case is asked twice of the running service: once where the originals cannot be had (the
minified-scope naming every frame got before: the misses) and once where they are uploaded in an
artifact bundle by the real sentry-cli, or served by a loopback website and scraped (the hits).
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
import requests

from symbolicator.errors import CacheFormatError
from symbolicator.service.js.offline import symbolicate_js_request
from symbolicator.sourcemaps import original_names
from symbolicator.sourcemaps.original_names import OriginalNames
from tests.support.service import LOOPBACK_FETCH, ServiceProcess, local_settings
from tests.support.tools import sentry_cli
from tests.support.websites import Website

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "js_scopes"
SRC = FIXTURES / "src"
OUT = FIXTURES / "out_nosources"
BUNDLES = ("rollup", "webpack")


def expected(bundle: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((OUT / bundle / "app.min.js.expected.json").read_text())
    return data


def traces(bundle: str, abs_path: str) -> tuple[list[dict[str, Any]], list[str | None]]:
    """The V8 traces as Sentry sends them (one stack trace per scenario, caller first), and the
    expected function of each frame in the same order."""
    by_label: dict[str, list[list[Any]]] = defaultdict(list)
    for frame in expected(bundle)["frames"]:
        by_label[frame[3]].append(frame)
    stacktraces, names = [], []
    for frames in by_label.values():
        caller_first = frames[::-1]
        stacktraces.append({"frames": [{"abs_path": abs_path, "lineno": f[0] + 1, "colno": f[1] + 1}
                                       for f in caller_first]})
        names.extend(f[2] for f in caller_first)
    return stacktraces, names


def named_right(answer: dict[str, Any], names: list[str | None]) -> tuple[int, int, list[tuple[str, Any]]]:
    """(frames named as TypeScript names them, frames TypeScript names, the misses)."""
    got = [f.get("function") for t in answer["stacktraces"] for f in t["frames"]]
    assert len(got) == len(names)
    pairs = [(want, have) for want, have in zip(names, got, strict=True) if want]
    misses = [(want, have) for want, have in pairs if want != have]
    return len(pairs) - len(misses), len(pairs), misses


@pytest.mark.parametrize("bundle", BUNDLES)
def test_cache_names_every_mapped_position_as_the_typescript_compiler_does(bundle: str) -> None:
    """The converted original of each source, asked at the original position of every mapping."""
    mappings = json.loads((OUT / bundle / "app.min.js.mappings.json").read_text())
    sources = json.loads((OUT / bundle / "app.min.js.map").read_text())["sources"]
    caches = {name: OriginalNames(original_names.build(name, (SRC / name).read_bytes()))
              for name in {Path(s).name for s in sources}}
    checked = 0
    for line0, col0, want, file, _ in expected(bundle)["positions"]:
        _, source, orig_line0, orig_col0 = mappings[f"{line0}:{col0}"]
        assert Path(sources[source]).name == file
        assert caches[file].function_at(orig_line0 + 1, orig_col0 + 1) == (want or ""), (line0, col0, file)
        checked += 1
    assert checked > 700


def test_top_level_code_has_no_function_and_a_typescript_source_is_parsed_as_typescript() -> None:
    main = SRC / "geometry.ts"
    as_ts = OriginalNames(original_names.build("geometry.ts", main.read_bytes()))
    assert as_ts.function_at(1, 1) is None and as_ts.function_at(0, 5) is None
    as_js = OriginalNames(original_names.build("geometry.js", main.read_bytes()))
    assert len(as_ts) > len(as_js)  # the JavaScript grammar loses methods with return types


def test_over_the_memory_budget_the_original_is_skipped_not_failed() -> None:
    data = original_names.build("main.ts", (SRC / "main.ts").read_bytes(), max_memory=1024)
    skipped = OriginalNames(data)
    assert skipped.skipped and len(skipped) == 0 and skipped.function_at(10, 3) is None


@pytest.mark.parametrize("damage", ["truncate", "magic", "version", "name index", "names"])
def test_a_damaged_cache_is_refused(damage: str) -> None:
    data = bytearray(original_names.build("shop.js", (SRC / "shop.js").read_bytes()))
    if damage == "truncate":
        data = data[:-3]
    elif damage == "magic":
        data[:4] = b"XXXX"
    elif damage == "version":
        data[8] = 99
    elif damage == "name index":
        count = int.from_bytes(data[16:24], "little")
        at = 32 + 8 * count
        data[at : at + 4] = (10_000).to_bytes(4, "little")
    else:
        data[-1:] = b"{"
    with pytest.raises(CacheFormatError):
        OriginalNames(bytes(data))


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("js-fetched-names")
    svc = ServiceProcess(work, local_settings(work, fetch=LOOPBACK_FETCH))
    with svc:
        yield svc


def post(svc: ServiceProcess, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "acme/web"}, json=body, timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["status"] == "completed", svc.log()
    return answer


def site_tree(root: Path, bundle: str, with_originals: bool) -> Path:
    """`assets/app.min.js` + map, and the originals at `src/` where the map's sources point."""
    (root / "assets").mkdir(parents=True)
    for name in ("app.min.js", "app.min.js.map"):
        shutil.copy(OUT / bundle / name, root / "assets" / name)
    if with_originals:
        shutil.copytree(SRC, root / "src", ignore=shutil.ignore_patterns("vendor.js"))
    return root


@pytest.mark.parametrize("bundle", BUNDLES)
def test_originals_uploaded_in_an_artifact_bundle_name_the_inlined_frames(service: ServiceProcess, tmp_path: Path,
                                                                           bundle: str) -> None:
    url = "https://cdn.example.org/assets/app.min.js"
    stacktraces, names = traces(bundle, url)
    answers = {}
    for n, with_originals in enumerate((False, True)):
        release = f"{bundle}-{n}"
        root = site_tree(tmp_path / release, bundle, False)
        # --no-rewrite: sentry-cli would otherwise copy the originals into the map's sourcesContent.
        upload = ("sourcemaps", "upload", "--release", release, "--ext", "js", "--ext", "map", "--ext", "ts",
                  "--no-rewrite", "--wait")
        sentry_cli(service, tmp_path, *upload, "--url-prefix", "~", str(root))
        if with_originals:  # rollup's sources resolve to `~/src/…`; webpack's are `webpack:///./src/…`
            prefix = "~/src" if bundle.startswith("rollup") else "webpack:///./src"
            sentry_cli(service, tmp_path, *upload, "--url-prefix", prefix, str(SRC))
        answers[n] = post(service, {"release": release, "stacktraces": stacktraces, "scraping": {"enabled": False}})
    before, total, misses = named_right(answers[0], names)
    assert before < total - 5, misses  # the inlined `sortBy`, `retry`, `handlers.onClick`, `Cart.#priceOf`…
    after, total, misses = named_right(answers[1], names)
    assert after == total, misses
    frames = [f for t in answers[1]["stacktraces"] for f in t["frames"]]
    assert all(f["data"]["resolved_with"] == "release" and "context_line" in f for f in frames)
    print(f"{bundle}: {before}/{total} named right without the originals, {after}/{total} with")


async def test_originals_scraped_from_the_website_name_the_inlined_frames(service: ServiceProcess) -> None:
    bundle = "rollup"  # webpack's sources are `webpack:///` URLs: nothing to scrape
    # The map's sources are `../../src/…`: from `/with/build/assets/` they are `/with/src/…`.
    async with Website() as site:
        for name in ("app.min.js", "app.min.js.map"):
            body = (OUT / bundle / name).read_bytes()
            site.add_body(f"/with/build/assets/{name}", body)
            site.add_body(f"/without/build/assets/{name}", body)
        for original in SRC.iterdir():
            site.add_body(f"/with/src/{original.name}", original.read_bytes())
        answers: dict[str, dict[str, Any]] = {}
        async with aiohttp.ClientSession() as session:
            for where in ("without", "with"):
                stacktraces, names = traces(bundle, site.url(f"/{where}/build/assets/app.min.js"))
                async with session.post(f"{service.url}/symbolicate-js", params={"scope": "acme/web"},
                                        json={"stacktraces": stacktraces}) as r:
                    answers[where] = await r.json()
        before, total, misses = named_right(answers["without"], names)
        assert before < total - 5, misses
        after, total, misses = named_right(answers["with"], names)
        assert after == total, misses
        found = {a["url"]: a["status"] for a in answers["with"]["scraping_attempts"]}
        assert found[site.url("/with/src/main.ts")] == "success"
        lost = {a["url"]: a.get("reason") for a in answers["without"]["scraping_attempts"]}
        assert lost[site.url("/without/src/main.ts")] == "not_found"


async def test_originals_that_are_not_code_cost_the_names_not_the_frames(service: ServiceProcess) -> None:
    """Binary junk, a 500 and an empty file where the originals should be: every frame is still mapped."""
    bundle = "rollup"
    async with Website() as site:
        for name in ("app.min.js", "app.min.js.map"):
            site.add_body(f"/bad/build/assets/{name}", (OUT / bundle / name).read_bytes())
        site.add_body("/bad/src/main.ts", bytes(range(256)) * 64)
        site.add_status("/bad/src/flows.js", 500)
        site.add_body("/bad/src/geometry.ts", b"")
        site.add_body("/bad/src/shop.js", b"class {{{ ((( => function")
        stacktraces, _ = traces(bundle, site.url("/bad/build/assets/app.min.js"))
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{service.url}/symbolicate-js", params={"scope": "acme/web"},
                                    json={"stacktraces": stacktraces}) as r:
                assert r.status == 200
                answer = await r.json()
    assert answer["status"] == "completed"
    frames = [f for t in answer["stacktraces"] for f in t["frames"]]
    assert len(frames) == 78 and all(f["data"]["symbolicated"] for f in frames)
    assert requests.get(f"{service.url}/healthcheck", timeout=10).ok


@pytest.mark.parametrize("bundle", BUNDLES)
def test_offline_symbolicate_names_from_the_originals_on_disk(tmp_path: Path, bundle: str) -> None:
    """`symbolicator symbolicate --symbols DIR` (the same frame code): originals beside the build."""
    counts = []
    for with_originals in (False, True):
        root = site_tree(tmp_path / str(with_originals), bundle, with_originals)
        stacktraces, names = traces(bundle, str(root / "assets" / "app.min.js"))
        answer = symbolicate_js_request({"stacktraces": stacktraces}, [root])
        counts.append(named_right(answer, names))
    (before, total, _), (after, _, misses) = counts
    assert before < total - 5 and after == total, misses


async def test_concurrent_events_fetch_and_convert_each_original_once(tmp_path: Path) -> None:
    """20 events at once on a fresh service: each original is fetched once and converted once."""
    bundle = "rollup"
    svc = ServiceProcess(tmp_path, {"storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
                                    "cache": {"dir": str(tmp_path / "cache")},
                                    "fetch": {"allow_private_addresses": True}, "workers": 1})
    async with Website() as site:
        for name in ("app.min.js", "app.min.js.map"):
            site.add_body(f"/c/build/assets/{name}", (OUT / bundle / name).read_bytes())
        for original in SRC.iterdir():
            site.add_body(f"/c/src/{original.name}", original.read_bytes())
        stacktraces, names = traces(bundle, site.url("/c/build/assets/app.min.js"))

        async def one(session: aiohttp.ClientSession) -> dict[str, Any]:
            async with session.post(f"{svc.url}/symbolicate-js", params={"scope": "acme/web"},
                                    json={"stacktraces": stacktraces}) as r:
                return dict(await r.json())

        with svc:
            async with aiohttp.ClientSession() as session:
                answers = await asyncio.gather(*(one(session) for _ in range(20)))
            converted = derived_misses(svc)
        for answer in answers:
            right, total, misses = named_right(answer, names)
            assert right == total, misses
        originals = {f["abs_path"] for t in answers[0]["stacktraces"] for f in t["frames"]}
        assert len(originals) >= 3 and all(site.requests.count(urlsplit(url).path) == 1 for url in originals)
        # One sourcemap cache, and one original-names cache per original the frames land in.
        assert converted == 1 + len(originals)


def derived_misses(svc: ServiceProcess) -> float:
    for line in requests.get(f"{svc.url}/metrics", timeout=10).text.splitlines():
        if line.startswith('symbolicator_cache_misses{cache="derived"}'):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError("no derived-cache misses in /metrics")
