"""Coalescing counted where the bytes come from: the origin website and the S3 server (issue 5, item 4).

The real service (subprocess, S3 storage on the session's SeaweedFS, through
the counting proxy of `bench/counting_proxy.py`) gets 50 identical first-time
requests at once from a separate client process. The origin (JS, scraped) and
the proxy (native, uploaded) hold the one download until all 50 requests have
read the scope's generation marker (each reads it once, just before its index
entries and the file), so all of them have started their lookup; then the
origin must have served each file once, S3 must have sent the debug file once
(by request count and by bytes), and the service must have converted once.
Every answer is checked: JS against the map's own mapping, native against
`llvm-symbolizer`. The measuring code is the bench's (`bench/coalescing.py`,
200 requests there); here it runs small, on the committed fixtures.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from bench.coalescing import js_burst, native_burst, settings
from bench.inputs import JsInput, NativeInput
from bench.s3_rig import service_on_s3
from tests.support.seaweed import SeaweedServer
from tests.support.websites import Website
from tests.support.native_service import ELF, needs_llvm, sample_addresses

pytestmark = pytest.mark.s3

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "tests" / "fixtures" / "js"
NODE = json.loads((JS / "expected/esbuild.node.json").read_text())["frames"][0]
N = 50


def bucket() -> str:
    return f"coalesce-{uuid.uuid4().hex[:16]}"


async def test_fifty_scrapes_of_one_map_cost_the_origin_one_request_per_file(seaweed: SeaweedServer,
                                                                            tmp_path: Path) -> None:
    positions = tmp_path / "positions.json"
    positions.write_text(json.dumps([[NODE["line"], NODE["column"]]]))
    inp = JsInput("esbuild-fixture", JS / "out/esbuild/app.js", JS / "out/esbuild/app.js.map", positions)
    async with Website() as site:
        with service_on_s3(tmp_path, settings(tmp_path, site.port, workers=1), True, seaweed, bucket()) as rig:
            burst = await js_burst(rig, site, inp, N, tmp_path)
        assert sorted(set(site.requests)) == ["/static/app.js", "/static/app.js.map"]
    assert burst.downloads == {"origin: minified file": 1, "origin: source map": 1}
    assert burst.conversions == 1
    assert burst.holds == ["released", "released"], "not every request was waiting on the download"
    assert burst.failures == [] and burst.correct == N
    assert burst.one_each


@needs_llvm
async def test_fifty_lookups_of_one_uploaded_debug_file_cost_s3_one_download(seaweed: SeaweedServer,
                                                                            tmp_path: Path) -> None:
    binary = ELF / "cpp_gcc_O2_dwarf5"
    addresses = tmp_path / "addresses.json"
    addresses.write_text(json.dumps(sample_addresses(binary, 8)))
    inp = NativeInput(binary, 0, addresses, "x86_64")
    with service_on_s3(tmp_path, settings(tmp_path, workers=1), True, seaweed, bucket()) as rig:
        burst = await native_burst(rig, inp, N, tmp_path)
    assert list(burst.downloads.values()) == [1], burst.downloads
    assert burst.bytes_ratio == 1.0
    assert burst.metric_downloads == 1 and burst.conversions == 1
    assert burst.holds == ["released"], "not every request was waiting on the download"
    assert burst.failures == [] and burst.correct == N
    assert burst.one_each
