"""Issue 5, item 4: 200 concurrent first-time requests → one download and one conversion, counted outside.

    python -m bench.coalescing [--quick]

The service runs as users run it (a subprocess, S3 storage on a real SeaweedFS),
and the downloads are counted where they land, not only in its `/metrics`:

- **JS, scraped.** The bench's JS bundle (`bench/inputs.py`: rollup quick,
  typescript full) is served, not uploaded, by a real HTTP site on 127.0.0.1
  that records every request per path; the service may fetch from exactly that
  host:port (`fetch.allowed_hosts`). 200 identical `/symbolicate-js` requests for
  a frame in it are fired at once from a separate client process.
- **Native, from S3.** The bench's C++ program is uploaded through the chunked
  upload protocol (`bench/upload.py`'s client), then 200 identical `/symbolicate`
  requests are fired at once. GETs of the stored debug file are counted at a
  counting proxy between the service and SeaweedFS (`bench/counting_proxy.py`
  says why a proxy and not SeaweedFS's own metrics), with the bytes sent.

**Every request overlaps the download.** The origin holds its answer for the
minified file (then for the map) and the proxy holds the debug file's GET until
the proxy has seen all 200 requests read the scope's generation marker: the one
object every request reads from S3 (once, `ScopeIndexes`), just before its
index entries (from memory while the marker is unchanged) and the file. So when
the one download ends, all 200 have started their lookup of it: the worst case
for coalescing, not a likely race. (Until indexes were remembered, the gate
counted reads of the index entry itself; the map's gate now adds nothing to the
minified file's.)

Conversions: the service's counters `symbolicator_native_conversions` and
`symbolicator_js_conversions`. Answers are
checked against the source map's own mapping (JS) and `llvm-symbolizer` (native).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench.counting_proxy import CountingProxy, Hold
from bench.inputs import WORK, JsInput, NativeInput, js_input, native_input
from bench.native_bench import N_FRAMES as N_ADDRESSES
from bench.report import Row, Section, section_main
from bench.s3_rig import Rig, delta, run_plan, scrape, service_on_s3
from bench.sourcemap_bench import N_FRAMES as N_POSITIONS
from bench.upload import upload
from symbolicator import keys
from symbolicator.types import DebugId, Scope
from tests.support.websites import Handler, Website
from tests.support.native_service import (
    IMAGE_ADDR,
    by_original_index,
    elf_info,
    elf_module,
    llvm_symbolize,
    ours,
)

BURST = 200
JS_SCOPE, JS_RELEASE = "bench/js", "coalescing"
NATIVE_SCOPE = "bench/big"  # where `bench.upload.upload` puts files
NATIVE_FRAMES = 8
HOLD_TIMEOUT_S = 300.0
JS_CONVERSIONS = "symbolicator_js_conversions_total"


@dataclass
class Burst:
    """What one burst of identical first-time requests cost, counted outside and inside the service."""

    correct: int
    total: int
    downloads: dict[str, int]
    bytes_ratio: float | None
    conversions: float
    metric_downloads: float | None
    holds: list[str]
    seconds: float
    failures: list[str] = field(default_factory=list)

    @property
    def one_each(self) -> bool:
        bytes_ok = self.bytes_ratio is None or abs(self.bytes_ratio - 1.0) < 1e-9
        return (all(n == 1 for n in self.downloads.values()) and bool(self.downloads) and bytes_ok
                and self.conversions == 1 and self.metric_downloads in (None, 1.0))


# --- JS -------------------------------------------------------------------------------------

def js_expectation(inp: JsInput) -> tuple[int, int, dict[str, Any]]:
    """The first sampled position and what the map itself says is there: the raw mapping covering it
    (the last one starting at or before it on its line), not our lookup."""
    import numpy as np

    from symbolicator.sourcemaps import parse

    line, col = json.loads(inp.positions.read_text())[0]
    smap = parse(inp.sourcemap.read_bytes())
    seg = smap.segments
    gen_col = np.asarray(seg.gen_col)
    on_line = np.flatnonzero((np.asarray(seg.gen_line) == line - 1) & (gen_col <= col - 1))
    i = int(on_line[np.argmax(gen_col[on_line])])  # the mapping covering the position
    return line, col, {"filename": smap.raw_sources[int(seg.src[i])], "lineno": int(seg.src_line[i]) + 1,
                       "colno": int(seg.src_col[i]) + 1}


def js_problem(result: dict[str, Any], expected: dict[str, Any]) -> str | None:
    body = result["body"]
    if result["status"] != 200 or not isinstance(body, dict) or body.get("status") != "completed":
        return f"HTTP {result['status']}: {str(body)[:200]}"
    frame = body["stacktraces"][0]["frames"][0]
    got = {k: frame.get(k) for k in expected}
    if not frame.get("data", {}).get("symbolicated") or got != expected:
        return f"got {got} (errors {body.get('errors')}), expected {expected}"
    return None


def gated(body: bytes, proxy: CountingProxy, marker_path: str, n: int, outcomes: list[str]) -> Handler:
    """An origin handler that answers once the proxy has seen `n` GETs of `marker_path` (or after
    `HOLD_TIMEOUT_S`), recording which in `outcomes`."""

    async def handler(request: web.Request) -> web.StreamResponse:
        deadline = time.monotonic() + HOLD_TIMEOUT_S
        while proxy.count(marker_path, "GET") < n:
            if time.monotonic() > deadline:
                outcomes.append("timed out")
                break
            await asyncio.sleep(0.005)
        else:
            outcomes.append("released")
        return web.Response(body=body, content_type="application/javascript")

    return handler


def serve_gated_bundle(site: Website, rig: Rig, inp: JsInput, n: int) -> tuple[str, str, str, list[str]]:
    """Routes for the minified file and its map, each held until `n` requests have read the scope's generation
    marker; (minified URL, minified path, map path, hold outcomes)."""
    assert rig.proxy is not None
    proxy = rig.proxy
    marker = rig.object_path(keys.index_generation(Scope.parse(JS_SCOPE)))
    min_path, map_path = f"/static/{inp.minified.name}", f"/static/{inp.sourcemap.name}"
    outcomes: list[str] = []
    for path, file in ((min_path, inp.minified), (map_path, inp.sourcemap)):
        site.add(path, gated(file.read_bytes(), proxy, marker, n, outcomes))
    return site.url(min_path), min_path, map_path, outcomes


async def js_burst(rig: Rig, site: Website, inp: JsInput, n: int, work: Path) -> Burst:
    url, min_path, map_path, outcomes = serve_gated_bundle(site, rig, inp, n)
    line, col, expected = js_expectation(inp)
    body = {"stacktraces": [{"frames": [{"abs_path": url, "lineno": line, "colno": col}]}], "release": JS_RELEASE}
    before = await asyncio.to_thread(scrape, rig.url)
    started = time.perf_counter()
    results = await run_plan(work, "js", rig.url, [{"path": f"/symbolicate-js?scope={JS_SCOPE}", "body": body}] * n,
                             concurrency=n)
    seconds = time.perf_counter() - started
    after = await asyncio.to_thread(scrape, rig.url)
    problems = [p for p in (js_problem(r, expected) for r in results) if p]
    return Burst(
        correct=len(results) - len(problems), total=len(results),
        downloads={"origin: minified file": site.requests.count(min_path), "origin: source map": site.requests.count(map_path)},
        bytes_ratio=None, conversions=delta(after, before, JS_CONVERSIONS), metric_downloads=None,
        holds=outcomes, seconds=seconds, failures=problems[:3])


# --- native ---------------------------------------------------------------------------------

def load_span(path: Path) -> int:
    """Bytes from the lowest to the end of the highest `PT_LOAD` segment: the image's size once loaded."""
    from elftools.elf.elffile import ELFFile

    with open(path, "rb") as f:
        loads = [s for s in ELFFile(f).iter_segments() if s["p_type"] == "PT_LOAD"]
        return max(s["p_vaddr"] + s["p_memsz"] for s in loads) - min(s["p_vaddr"] for s in loads)


def native_request(inp: NativeInput) -> tuple[dict[str, Any], list[list[dict[str, Any]]]]:
    """A request for the first `NATIVE_FRAMES` sampled addresses, and llvm-symbolizer's frames for them."""
    addrs = json.loads(inp.addresses.read_text())[:NATIVE_FRAMES]
    vmaddr = elf_info(inp.binary)["vmaddr"]
    frames = [{"instruction_addr": hex(IMAGE_ADDR + a - vmaddr), "adjust_instruction_addr": False} for a in addrs]
    body = {"stacktraces": [{"frames": frames}], "modules": [elf_module(inp.binary, image_size=load_span(inp.binary))]}
    return body, llvm_symbolize(inp.binary, addrs)


def native_problem(result: dict[str, Any], expected: list[list[dict[str, Any]]]) -> str | None:
    body = result["body"]
    if result["status"] != 200 or not isinstance(body, dict) or body.get("status") != "completed":
        return f"HTTP {result['status']}: {str(body)[:200]}"
    if body["modules"][0].get("debug_status") != "found":
        return f"module {body['modules'][0].get('debug_status')}"
    got = by_original_index(body["stacktraces"][0]["frames"])
    for i, want in enumerate(expected):
        if ours(got.get(i, [])) != want:
            return f"frame {i}: got {ours(got.get(i, []))}, llvm-symbolizer {want}"
    return None


async def native_burst(rig: Rig, inp: NativeInput, n: int, work: Path) -> Burst:
    assert rig.proxy is not None
    proxy = rig.proxy
    await upload(rig.url, inp.binary, compress=True)
    body, expected = await asyncio.to_thread(native_request, inp)
    scope = Scope.parse(NATIVE_SCOPE)
    index_key = keys.debug_id_index(scope, DebugId.parse(body["modules"][0]["debug_id"]))
    entries = await asyncio.to_thread(rig.list_keys, index_key)  # an index folder: one object per stored file
    stored = [str(f["key"]) for e in entries for f in json.loads(await asyncio.to_thread(rig.read_object, e))["files"]]
    # Every request reads the scope's generation marker once before its indexes (`ScopeIndexes`), so n reads
    # of it mean every request has come past its index lookup to the download.
    marker_path = rig.object_path(keys.index_generation(scope))
    holds: list[Hold] = [proxy.hold(rig.object_path(k), lambda: proxy.count(marker_path, "GET") >= n, HOLD_TIMEOUT_S)
                         for k in stored]
    proxy.reset()  # the upload's requests are not the burst's
    before = await asyncio.to_thread(scrape, rig.url)
    started = time.perf_counter()
    results = await run_plan(work, "native", rig.url, [{"path": f"/symbolicate?scope={NATIVE_SCOPE}", "body": body}] * n,
                             concurrency=n)
    seconds = time.perf_counter() - started
    after = await asyncio.to_thread(scrape, rig.url)
    problems = [p for p in (native_problem(r, expected) for r in results) if p]
    gets = proxy.requests_under(rig.object_path(f"files/{scope}/"), "GET")
    size = inp.binary.stat().st_size
    sent = sum(proxy.bytes_sent(p) for p in gets)
    return Burst(
        correct=len(results) - len(problems), total=len(results),
        downloads={f"S3 GETs of the debug file (`…/{p.rsplit('/', 1)[-1]}`)": c for p, c in gets.items()}
        or {"S3 GETs of the debug file": 0},
        bytes_ratio=sent / size, conversions=delta(after, before, "symbolicator_native_conversions_total"),
        metric_downloads=delta(after, before, "symbolicator_native_downloads_total"),
        holds=[o for h in holds for o in h.outcomes], seconds=seconds, failures=problems[:3])


# --- the section ----------------------------------------------------------------------------

def settings(work: Path, site_port: int | None = None, workers: int = 2) -> dict[str, Any]:
    """The service may fetch from the origin's host:port only; admission is not what is measured here."""
    return {
        "cache": {"dir": str(work / "cache")},
        "fetch": {"allowed_hosts": [f"127.0.0.1:{site_port}"] if site_port else []},
        "limits": {"max_concurrent_jobs": 4 * BURST, "max_file_bytes": 1 << 30},
        "workers": workers,
    }


async def measure(quick: bool, log: Callable[[str], None]) -> tuple[Burst, Burst, JsInput, NativeInput]:
    work = WORK / "coalescing"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    log("coalescing: preparing inputs")
    js = await asyncio.to_thread(js_input, quick, N_POSITIONS[quick])  # the JS bench's inputs, reused
    native = await asyncio.to_thread(native_input, quick, N_ADDRESSES[quick])
    async with Website() as site:
        with service_on_s3(work, settings(work, site.port), counting=True) as rig:
            log(f"coalescing: {BURST} concurrent /symbolicate-js for one scraped map ({js.package})")
            js_result = await js_burst(rig, site, js, BURST, work)
            log(f"coalescing: {BURST} concurrent /symbolicate for one debug file on S3")
            native_result = await native_burst(rig, native, BURST, work)
    shutil.rmtree(work, ignore_errors=True)
    return js_result, native_result, js, native


def held(burst: Burst) -> str:
    """Each hold ends when every request has read its index entry, or times out."""
    if not burst.holds:
        return "never held"
    if all(h == "released" for h in burst.holds):
        return f"all {burst.total} ({len(burst.holds)} hold{'s' if len(burst.holds) > 1 else ''})"
    return ", ".join(burst.holds)


def rows_for(name: str, burst: Burst) -> list[Row]:
    rows = [Row(f"{name}: {what}", str(count), "", "", "exactly 1", count == 1) for what, count in burst.downloads.items()]
    if burst.bytes_ratio is not None:
        rows.append(Row(f"{name}: bytes of it sent ÷ its size (at the proxy)", f"{burst.bytes_ratio:.2f}", "", "",
                        "1.00", abs(burst.bytes_ratio - 1.0) < 1e-9))
    if burst.metric_downloads is not None:
        rows.append(Row(f"{name}: downloads (service `/metrics`)", f"{burst.metric_downloads:.0f}", "", "",
                        "exactly 1", burst.metric_downloads == 1))
    source = f"`symbolicator_{name}_conversions`"
    rows += [
        Row(f"{name}: conversions ({source})", f"{burst.conversions:.0f}", "", "", "exactly 1", burst.conversions == 1),
        Row(f"{name}: answers correct", f"{burst.correct}/{burst.total}", "", "", "all", burst.correct == burst.total),
        Row(f"{name}: requests that had started their lookup when the held download was let go", held(burst), "", "",
            f"all {burst.total}", bool(burst.holds) and all(h == "released" for h in burst.holds)),
        Row(f"{name}: burst wall time (client process)", f"{burst.seconds:.1f} s", "", "", "info", None),
        Row(f"{name}: **exactly one download and one conversion**", "yes" if burst.one_each else "**no**", "", "",
            "yes", burst.one_each and burst.correct == burst.total),
    ]
    return rows


def run(quick: bool, log: Callable[[str], None]) -> Section:
    js, native, js_inp, native_inp = asyncio.run(measure(quick, log))
    notes = [
        (f"The real service (subprocess, S3 storage on a real SeaweedFS, 2 conversion workers) receives {BURST} "
         "identical first-time requests at once from a separate client process (`bench/plan_client.py`)."),
        (f"- JS: `{js_inp.package}` bundle ({js_inp.minified.stat().st_size / 1e6:.1f} MB + "
         f"{js_inp.sourcemap.stat().st_size / 1e6:.1f} MB map), not uploaded: scraped from a loopback site "
         "that counts every request per path. Conversions from `symbolicator_js_conversions`."),
        (f"- Native: the bench's C++ program ({native_inp.binary.stat().st_size / 1e6:.0f} MB ELF), uploaded with "
         "the chunked protocol; GETs of the stored debug file counted at a counting proxy between the service and "
         "SeaweedFS (SeaweedFS's own metrics count by action, not by object)."),
        ("- The origin (JS) and the proxy (native) hold the file until all requests have read the scope's "
         "generation marker, the first thing each reads from S3, just before its index entries and the file, so "
         "every request had started while the one download was in flight (\"released\" below; \"timed out\" "
         f"would mean they were not all there after {HOLD_TIMEOUT_S:.0f} s)."),
    ]
    for name, burst in (("JS", js), ("native", native)):
        if burst.failures:
            notes.append(f"- {name} wrong answers, first ones: " + "; ".join(f"`{f}`" for f in burst.failures))
    return Section("Coalescing (issue 5, item 4, `bench/coalescing.py`)", notes,
                   rows_for("JS", js) + rows_for("native", native))


def main(argv: list[str] | None = None) -> int:
    return section_main("python -m bench.coalescing", __doc__, "the small inputs (rollup, the 2-unit program)", run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
