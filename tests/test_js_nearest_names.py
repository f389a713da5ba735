"""Names whose mapping starts before the name (issue 13, item 2; docs/javascript.md).

Google Closure Compiler starts the mapping of a function's name on the character before it: in
`async function q(a){…}` the mapping carrying `fetchUser` starts at the space, none at `q`.
Symbolicator's library names such a scope from the nearest mapping at or before the name token
on its line (`lookup_token`); so does our `NameResolver`. The fixture is the sample app of
`tests/fixtures/js_scopes/src/` bundled by esbuild and minified by the real Closure Compiler
(SIMPLE, `--assume_function_wrapper`, input map applied), with real V8 traces (node running the
bundle) and expected names from the TypeScript compiler API on the ORIGINAL sources, all recorded
by `tests/fixtures/js_scopes/nearest/build.js`; the map's positions come from
`@jridgewell/trace-mapping`. Nothing here is derived from this project's output.
`tests/fixtures/js_scopes/nearest/probe.js` is the probe of 15 setups of 8 minifiers that found
Closure to be the one that needs the rule.

Mutation check: with `NameResolver.__call__` made exact-only (its `if not at and …:` fallback
block deleted), the three tests that convert fail and the two that check the fixture itself
pass: `fetchUser` comes back as `q`, `parseAll` as `y`, `retry` as `w` (5 V8 frames; 139 of
the 1550 positions).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from symbolicator.sourcemaps.smcache import SmCache, build_from_sources
from tests.support.js_names import cache_score
from tests.support.service import ServiceProcess, local_settings
from tests.support.websites import Website

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "js_scopes" / "nearest"
BUNDLE = FIXTURE / "out" / "closure" / "app.min.js"
EXPECTED: dict[str, Any] = json.loads(Path(f"{BUNDLE}.expected.json").read_text("utf-8"))
# A V8 frame naming its function by a bare identifier: the minified function's own name token.
_OWN_NAME = re.compile(r"at (?:async )?([\w$]+) \(")


def own_name_frames() -> list[list[Any]]:
    """The V8 frames whose function V8 names by its own (mangled) name token, with an original name."""
    return [f for f in EXPECTED["frames"] if f[2] and (m := _OWN_NAME.match(f[4])) and m.group(1) != f[2]]


def converted() -> SmCache:
    return SmCache.from_bytes(build_from_sources(Path(f"{BUNDLE}.map").read_bytes(), BUNDLE.read_text("utf-8")))


def test_closure_maps_function_names_from_the_character_before_them() -> None:
    """What makes the fixture: for `fetchUser`, `parseAll` and `retry` the mapping that carries the
    original name starts one column before the mangled name, and none starts on it."""
    mappings = json.loads(Path(f"{BUNDLE}.mappings.json").read_text("utf-8"))
    names = {f[2]: _OWN_NAME.match(f[4]).group(1) for f in own_name_frames()}  # type: ignore[union-attr]
    lines = BUNDLE.read_text("utf-8").split("\n")
    for original in ("fetchUser", "parseAll", "retry"):
        token = names[original]
        line0 = next(i for i, text in enumerate(lines) if f"function {token}(" in text)
        col0 = lines[line0].index(f"function {token}(") + len("function ")
        assert f"{line0}:{col0}" not in mappings
        assert mappings[f"{line0}:{col0 - 1}"][0] == original


def test_frames_named_by_a_mangled_name_get_the_original_one() -> None:
    cache = converted()
    frames = own_name_frames()
    assert len(frames) >= 8
    got = [(f[2], token.function if (token := cache.lookup(f[0] + 1, f[1] + 1)) else None) for f in frames]
    assert [want for want, _ in got] == [have for _, have in got]


def test_every_mapped_position_gets_an_original_name_never_a_mangled_one() -> None:
    """A miss may be None or a neighbour's name (Closure also starts a nested function's mappings
    in its parent, and inlined `runAll` into an anonymous IIFE), never a minified identifier."""
    originals = {row[2] for row in EXPECTED["positions"]}
    rows = EXPECTED["positions"]
    score, misses = cache_score(converted(), rows)
    assert len(rows) > 1500 and score > 0.9, misses[:10]
    assert all(have is None or have in originals for _, have in misses), misses


def test_functions_closure_left_without_a_mapped_head_are_named_from_their_body() -> None:
    """Closure turns `async function runAll(){…}` + `runAll()` into `(async function(){…})()` and
    drops the name of the function expression `increment`, mapping neither head: only the body's
    `{` maps, to the `{` after `function runAll(): Promise<void>` in the original. Before that was
    read (scopes.py `_Original._from_body`), 26 of the 50 named V8 frames were named, all misses
    `runAll`, `increment` and `lookup` (an arrow's binding, still unnamed)."""
    named = [f for f in EXPECTED["frames"] if f[2]]
    score, misses = cache_score(converted(), named)
    assert len(named) == 50 and sum(f[2] == "runAll" for f in named) >= 20
    assert set(misses) <= {("lookup", None)}, misses


@pytest.mark.skipif(shutil.which("node") is None or not (ROOT / "node_modules" / "typescript").exists(),
                    reason="needs node + node_modules")
def test_expectations_rederive_from_the_committed_bundle() -> None:
    check = ["node", str(FIXTURE / "build.js"), "--check"]
    result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("js-nearest")
    svc = ServiceProcess(work, local_settings(work, fetch={"allow_private_addresses": True}))
    with svc:
        yield svc


async def test_the_service_names_them_from_a_scraped_closure_bundle(service: ServiceProcess) -> None:
    """The V8 traces as Sentry sends them (one stack trace per scenario, caller first), the bundle
    and its map scraped from a loopback website."""
    by_label: dict[str, list[list[Any]]] = defaultdict(list)
    for frame in EXPECTED["frames"]:
        by_label[frame[3]].append(frame)
    sent = [frames[::-1] for frames in by_label.values()]
    async with Website() as site:
        for name in ("app.min.js", "app.min.js.map"):
            site.add_body(f"/assets/{name}", (BUNDLE.parent / name).read_bytes())
        url = site.url("/assets/app.min.js")
        body = {"stacktraces": [{"frames": [{"abs_path": url, "lineno": f[0] + 1, "colno": f[1] + 1} for f in frames]}
                                for frames in sent]}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{service.url}/symbolicate-js", params={"scope": "acme/web"}, json=body) as r:
                assert r.status == 200, await r.text()
                answer = await r.json()
    got = {tuple(frame): f.get("function")
           for frames, t in zip(sent, answer["stacktraces"], strict=True)
           for frame, f in zip(frames, t["frames"], strict=True)}
    own = own_name_frames()
    assert [f[2] for f in own] == [got[tuple(f)] for f in own]
