"""The service under load, and isolation (issue 5, bench items 2 and 3).

    python -m bench.service_load [--quick] [--no-profile]    # prints the section as Markdown

What runs, in order (everything started is stopped on the way out, also on an
error, Ctrl-C or SIGTERM):

1. inputs: the JS bench's bundle + map and sampled positions, the native
   bench's C++ program and four real fixtures (`service_events.py`); the big
   debug file (the program + ≥ 1 GiB of non-DWARF payload, new build-id);
2. the in-process engine time of every event (`service_engine.py`), on caches
   built by the workers' own conversion functions, before the service starts;
3. the real service (`symbolicator serve`, local storage, a fresh cache, its
   own TOML) and a slow origin on 127.0.0.1; everything uploaded with
   `symbolicator upload` (chunked protocol): the bundle + map as an artifact
   bundle with a release, the five modules, the big file;
4. warm-up: every event once (the first converts); the answers are checked
   against `.symtab` (native) and for being symbolicated (JS);
5. load from `bench/load_client.py` in its own process: JS events, then native
   events, at concurrency 1, 16, 64, 256 for a fixed window each;
6. isolation at concurrency 16 on a mix of both kinds: rounds of a quiet run
   and a run while 20 requests scrape the slow origin; then a quiet run, a run
   while the big file converts (the window ends when its conversion has
   answered) and a quiet run;
7. the service stopped, warm events/s with `serve --processes 1` and `2` on the
   same uploads and cache (`bench/processes.py`).

The warm p50 at concurrency 1 is reported beside the HTTP floor (`GET
/healthcheck` from the same client) and the in-process engine time; the old
target "p50 ≤ 2× the engine time" is retired (issue 11: it sat below the floor).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import sys
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import FrameType
from typing import Any

from bench import native_bench, processes, sourcemap_bench
from bench.inputs import WORK, js_input, native_input
from bench.load_client import percentile
from bench.report import Row, Section, table
from bench.service_engine import (
    EngineCaches,
    build_caches,
    js_engine,
    js_service_code,
    native_engine,
    native_service_code,
)
from bench.service_events import (
    JS_FRAMES,
    NATIVE_FRAMES,
    RELEASE,
    SCOPE,
    big_file_event,
    check_js,
    check_native,
    js_events,
    make_big_file,
    native_events,
    native_modules,
    read_elf,
    slow_origin_events,
)
from bench.service_harness import (
    SlowOrigin,
    answer_all,
    handler_seconds,
    metric,
    peak_rss_mib,
    profile_during,
    py_spy_available,
    run_load,
    run_wrk,
    upload,
    wrk_available,
)
from tests.support.service import ServiceProcess

CONCURRENCY = (1, 16, 64, 256)
WINDOW_S = {True: 2.0, False: 10.0}
ISOLATION_WINDOW_S = {True: 3.0, False: 8.0}
BIG_WINDOW_MAX_S = {True: 60.0, False: 300.0}
N_EVENTS = {True: 100, False: 500}
ENGINE_PASSES = {True: 3, False: 5}
BIG_PAYLOAD_MIB = {True: 128, False: 1024}
ISOLATION_C = 16
SLOW_REQUESTS = 20
SLOW_DELAY_S = 10.0
SLOW_ROUNDS = {True: 2, False: 3}
SLOW_TARGET = 1.5
BIG_TARGET = 3.0
MAX_JOBS = 512
BIG_IMAGE_ADDR = 0x7000_0000_0000
ROUTES = {"JS": "/symbolicate-js", "native": "/symbolicate"}
WRK_WINDOWS = 5


def _settings(run_dir: Path) -> dict[str, Any]:
    return {
        "storage": {"backend": "local", "local_dir": str(run_dir / "uploads")},
        "cache": {"dir": str(run_dir / "cache")},
        "limits": {"max_concurrent_jobs": MAX_JOBS},
        "fetch": {"allow_private_addresses": True, "read_timeout_s": 3 * SLOW_DELAY_S,
                  "total_timeout_s": 6 * SLOW_DELAY_S, "per_host_concurrency": SLOW_REQUESTS},
    }


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several load runs as one: percentiles over all their latencies, rates over all their windows."""
    lat = sorted(x / 1000 for r in runs for x in r["latencies_ms"])
    errors: dict[str, int] = {}
    for r in runs:
        for kind, n in r["errors"].items():
            errors[kind] = errors.get(kind, 0) + n
    window = sum(r["window_s"] for r in runs)
    return {"p50_s": percentile(lat, 50), "p99_s": percentile(lat, 99), "events_per_s": len(lat) / window,
            "window_s": window, "errors": errors, "background": [b for r in runs for b in r["background"]],
            "runs": len(runs)}


def _clean(run_dir: Path) -> None:
    """Drop the bulky data (runs last, after the service stopped); the logs stay until the next run."""
    for sub in ("uploads", "cache", "engine", "js"):
        shutil.rmtree(run_dir / sub, ignore_errors=True)


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:,.1f} ms"


def _errors(result: dict[str, Any]) -> str:
    errors = result["errors"]
    return "no errors" if not errors else "errors: " + ", ".join(f"{k} ×{v}" for k, v in sorted(errors.items()))


def _load_row(kind: str, result: dict[str, Any]) -> Row:
    return Row(f"{kind}, concurrency {result['concurrency']}",
               f"{result['events_per_s']:,.0f} events/s; p50 {_ms(result['p50_s'])}; p99 {_ms(result['p99_s'])}",
               "", _errors(result), "info", None)


def _ratio_row(figure: str, loaded: dict[str, Any], quiet: dict[str, Any], target: float) -> Row:
    ratio = loaded["p99_s"] / quiet["p99_s"]
    clean = not loaded["errors"] and all(b["ok"] for b in loaded["background"])
    return Row(figure, f"p99 {_ms(loaded['p99_s'])} ({loaded['events_per_s']:,.0f} events/s; {_errors(loaded)})",
               f"quiet p99 {_ms(quiet['p99_s'])} ({quiet['events_per_s']:,.0f} events/s)", f"{ratio:.2f}×",
               f"≤ {target}×", ratio <= target and clean)


def _background(result: dict[str, Any]) -> str:
    bg = result["background"]
    ok = sum(b["ok"] for b in bg)
    secs = [b["seconds"] for b in bg]
    runs = result.get("runs", 1)
    return (f"{ok}/{len(bg)} completed, {min(secs):.1f}–{max(secs):.1f} s after their window opened "
            f"({runs} window{'s' if runs > 1 else ''} of {result['window_s'] / runs:.1f} s)")


def _engine_figures(inp_js: Any, modules: Any, caches: EngineCaches, js_ev: list[Any], nat_ev: list[Any],
                    passes: int, map_url: str) -> dict[str, float]:
    """Median over events of each event's best time: engine alone and our request code in process."""
    return {
        "js_engine": statistics.median(js_engine(caches, inp_js.minified, map_url, js_ev, passes)),
        "native_engine": statistics.median(native_engine(caches, modules, nat_ev, passes)),
        "js_code": statistics.median(js_service_code(caches, inp_js.minified, map_url, js_ev, passes)),
        "native_code": statistics.median(native_service_code(caches, nat_ev, passes)),
    }


def run(quick: bool, log: Callable[[str], None], profile: bool = True) -> Section:
    """Every figure of issue 5 items 2 and 3, as one report section."""
    with ExitStack() as stack:
        previous = signal.getsignal(signal.SIGTERM)
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, _raise_interrupt)
            stack.callback(signal.signal, signal.SIGTERM, previous)
        return _run(quick, log, profile, stack)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _run(quick: bool, log: Callable[[str], None], profile: bool, stack: ExitStack) -> Section:
    mode = "quick" if quick else "full"
    window, n_events = WINDOW_S[quick], N_EVENTS[quick]
    run_dir = WORK / "service" / f"run-{mode}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    stack.callback(_clean, run_dir)

    log("service: inputs")
    inp_js = js_input(quick, sourcemap_bench.N_FRAMES[quick])
    inp_nat = native_input(quick, native_bench.N_FRAMES[quick])
    modules = native_modules(inp_nat.binary)
    program_addresses = json.loads(inp_nat.addresses.read_text())
    js_ev = js_events(inp_js.minified.name, json.loads(inp_js.positions.read_text()), n_events)
    nat_ev = native_events(modules, program_addresses, n_events)
    js_file, nat_file = run_dir / "js-events.json", run_dir / "native-events.json"
    js_file.write_text(json.dumps(js_ev))
    nat_file.write_text(json.dumps(nat_ev))
    log(f"service: the big debug file ({BIG_PAYLOAD_MIB[quick]} MiB payload)")
    big_path = make_big_file(inp_nat.binary, WORK / "service" / f"big-{mode}.debug", BIG_PAYLOAD_MIB[quick])
    big = read_elf(big_path, BIG_IMAGE_ADDR)

    log("service: engine caches (the workers' conversion functions) and in-process engine time")
    map_url = js_ev[0]["body"]["stacktraces"][0]["frames"][0]["abs_path"] + ".map"
    caches = build_caches(inp_js.sourcemap, inp_js.minified, modules, run_dir / "engine")
    engine = _engine_figures(inp_js, modules, caches, js_ev, nat_ev, ENGINE_PASSES[quick], map_url)

    rounds = SLOW_ROUNDS[quick]
    slow_paths = [f"/slow/{r}/{i}/app.min.js" for r in range(rounds) for i in range(SLOW_REQUESTS)]
    origin = stack.enter_context(SlowOrigin(slow_paths, SLOW_DELAY_S))
    svc = ServiceProcess(run_dir, _settings(run_dir))
    stack.callback(svc.stop)
    svc.start()
    assert svc.proc is not None
    log(f"service: running at {svc.url} (pid {svc.proc.pid}); uploading")
    js_dir = run_dir / "js" / "static"
    js_dir.mkdir(parents=True)
    for f in (inp_js.minified, inp_js.sourcemap):
        os.link(f, js_dir / f.name)
    upload_s = upload(svc.url, SCOPE, RELEASE, [js_dir.parent, *(m.path for m in modules)])
    big_upload_s = upload(svc.url, SCOPE, RELEASE, [big_path])
    rss = [peak_rss_mib(svc.proc.pid)]

    log("service: first requests (they convert), then every event once, checked")
    t0 = time.perf_counter()
    answer_all(svc.url, js_ev[:1], 1)
    first_js = time.perf_counter() - t0
    t0 = time.perf_counter()
    answer_all(svc.url, nat_ev[:1], 1)
    first_native = time.perf_counter() - t0
    js_answers = answer_all(svc.url, js_ev)
    nat_answers = answer_all(svc.url, nat_ev)
    js_check = [sum(x) for x in zip(*(check_js(a) for a in js_answers))]
    nat_check = [sum(x) for x in zip(*(check_native(modules, e, a) for e, a in zip(nat_ev, nat_answers)))]
    conversions_warm = metric(svc.url, "symbolicator_native_conversions_total")
    rss.append(peak_rss_mib(svc.proc.pid))

    results: dict[str, dict[int, dict[str, Any]]] = {"JS": {}, "native": {}}
    single: dict[str, dict[str, Any]] = {}
    for kind, events in (("JS", js_file), ("native", nat_file)):
        for c in CONCURRENCY:
            log(f"service: {kind} events at concurrency {c} for {window:.0f} s")
            results[kind][c] = run_load(run_dir, svc.url, [events], c, window)
        single[kind] = _single_client_runs(run_dir, svc.url, events, ROUTES[kind], window, log, kind)
    conversions_after = metric(svc.url, "symbolicator_native_conversions_total")
    health_file = run_dir / "health.json"
    health_file.write_text(json.dumps([{"path": "/healthcheck", "expect": "ok"}]))
    log(f"service: GET /healthcheck at concurrency 1 for {window:.0f} s (the HTTP floor)")
    floor = run_load(run_dir, svc.url, [health_file], 1, window)
    floor_wrk = run_wrk(run_dir, svc.url, health_file, 1, window) if wrk_available() else None

    iso_window = ISOLATION_WINDOW_S[quick]
    mixed = [js_file, nat_file]
    quiet_runs, slow_runs = [], []
    for r in range(rounds):
        log(f"service: isolation round {r + 1}/{rounds} — quiet, then {SLOW_REQUESTS} requests scraping a 10 s origin")
        quiet_runs.append(run_load(run_dir, svc.url, mixed, ISOLATION_C, iso_window))
        slow_runs.append(run_load(run_dir, svc.url, mixed, ISOLATION_C, iso_window,
                                  background=slow_origin_events(origin.base_url, r, SLOW_REQUESTS)))
    log("service: isolation — quiet, while the big debug file converts, quiet")
    big_quiet = [run_load(run_dir, svc.url, mixed, ISOLATION_C, iso_window)]
    big_run = run_load(run_dir, svc.url, mixed, ISOLATION_C, BIG_WINDOW_MAX_S[quick],
                       background=[big_file_event(big, program_addresses)], stop_with_background=True)
    big_quiet.append(run_load(run_dir, svc.url, mixed, ISOLATION_C, iso_window))
    quiet_1, slow, quiet_2 = pooled(quiet_runs), pooled(slow_runs), pooled(big_quiet)
    rss.append(peak_rss_mib(svc.proc.pid))
    svc.stop()
    process_rows, process_runs = processes.process_rows(run_dir, _settings(run_dir),
                                                        {"JS": js_file, "native": nat_file}, window, quick, log)
    log("service: in-process engine time again (the service idle); the lower of the two counts")
    again = _engine_figures(inp_js, modules, caches, js_ev, nat_ev, ENGINE_PASSES[quick], map_url)
    engine_runs = [engine, again]
    engine = {k: min(engine[k], again[k]) for k in engine}

    rows = _rows(results, single, engine, slow, quiet_1, big_run, quiet_2, big_path, floor_wrk or floor)
    rows += process_rows
    rows += [
        Row("HTTP floor: `GET /healthcheck` at concurrency 1 (aiohttp + loopback, no body, no job)",
            f"{floor['events_per_s']:,.0f} requests/s; p50 {_ms(floor['p50_s'])}; p99 {_ms(floor['p99_s'])}", "",
            _errors(floor), "info", None),
        *([Row("HTTP floor from wrk: `GET /healthcheck` at concurrency 1",
               f"{floor_wrk['events_per_s']:,.0f} requests/s; p50 {_ms(floor_wrk['p50_s'])}; "
               f"p99 {_ms(floor_wrk['p99_s'])}", "", _errors(floor_wrk), "info", None)] if floor_wrk else []),
        Row("first JS request (downloads the bundle, converts the map)", _ms(first_js), "", "", "info", None),
        Row("first native request (converts 5 modules)", _ms(first_native), "", "", "info", None),
        Row("warm-up answers checked: JS frames symbolicated", f"{js_check[1]:,}/{js_check[0]:,}", "", "",
            "sanity", js_check[1] == js_check[0]),
        Row("warm-up answers checked: native frames whose outermost function is the `.symtab` symbol at the "
            "lookup address", f"{nat_check[1]:,}/{nat_check[0]:,}", "", "", "sanity",
            nat_check[1] >= 0.99 * nat_check[0]),
        Row("debug files converted during the load runs (warm: expected 0)",
            f"{conversions_after - conversions_warm:.0f}", "", "", "sanity", conversions_after == conversions_warm),
        Row("slow-origin requests", _background(slow), "", "", "info", None),
        Row("big-file request", _background(big_run), "", "", "info", None),
        Row("service peak RSS (VmHWM, main process) after the uploads / after warm-up / at the end",
            " / ".join(f"{x:,.0f} MiB" for x in rss), "", "", "info", None),
    ]
    profiles: dict[str, str] = {}
    missed = [r for r in rows if r.passed is False]
    if profile and missed and py_spy_available():
        for kind, events in (("JS", js_file), ("native", nat_file)):
            log(f"service: py-spy on the service during {kind} load at concurrency 1")
            _, text = profile_during(svc.proc.pid, window,
                                     lambda events=events: run_load(run_dir, svc.url, [events], 1, window),  # type: ignore[misc]
                                     run_dir / f"py-spy-{kind}.txt")
            profiles[f"service process, {kind} events at concurrency 1"] = text
    notes = _notes(quick, inp_js, inp_nat, big_path, n_events, window, iso_window, upload_s, big_upload_s, results)
    runs = {f"{kind} c={c}": r for kind, by_c in results.items() for c, r in by_c.items()}
    runs.update({f"{kind} c=1, wrk": r["wrk"] for kind, r in single.items() if r.get("wrk")})
    runs.update({f"isolation round {i + 1} quiet": q for i, q in enumerate(quiet_runs)})
    runs.update({f"isolation round {i + 1} slow origin": q for i, q in enumerate(slow_runs)})
    runs.update({"isolation big file: quiet before": big_quiet[0], "isolation big file": big_run,
                 "isolation big file: quiet after": big_quiet[1], "healthcheck c=1": floor})
    if floor_wrk:
        runs["healthcheck c=1, wrk"] = floor_wrk
    runs.update(process_runs)
    samples = {k: json.dumps({f: v for f, v in r.items() if f != "latencies_ms"}) for k, r in runs.items()}
    samples["engine medians (s), before the service started / after the load"] = json.dumps(engine_runs)
    return Section("Service under load and isolation (issue 5 items 2–3, `bench/service_load.py`)", notes, rows,
                   profiles, samples)


def _single_client_runs(run_dir: Path, url: str, events: Path, route: str, window: float,
                        log: Callable[[str], None], kind: str) -> dict[str, Any]:
    """Concurrency 1 from wrk (when installed) in `WRK_WINDOWS` short windows, and the service's own
    handler time in each; the best window counts, as the engine's best pass does (this machine's
    p50 moves by half from one window to the next with nothing else running)."""
    if not wrk_available():
        return {}
    log(f"service: {kind} events at concurrency 1 from wrk, {WRK_WINDOWS} windows of {window / 2:.0f} s")
    runs = []
    for _ in range(WRK_WINDOWS):
        before = handler_seconds(url, route)
        result = run_wrk(run_dir, url, events, 1, window / 2)
        after = handler_seconds(url, route)
        count = after[1] - before[1]
        runs.append((result, (after[0] - before[0]) / count if count else None))
    best = min(runs, key=lambda r: r[0]["p50_s"])
    return {"wrk": {**best[0], "window_p50s_ms": [round(r["p50_s"] * 1000, 3) for r, _ in runs]},
            "handler_s": best[1]}


def _rows(results: dict[str, dict[int, dict[str, Any]]], single: dict[str, dict[str, Any]],
          engine: dict[str, float], slow: dict[str, Any], quiet_1: dict[str, Any], big_run: dict[str, Any],
          quiet_2: dict[str, Any], big_path: Path, floor: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for kind, frames in (("JS", JS_FRAMES), ("native", NATIVE_FRAMES)):
        key = "js" if kind == "JS" else "native"
        label = f"{kind} events ({frames} frames{', 5 modules' if kind == 'native' else ''})"
        rows += [_load_row(label, results[kind][c]) for c in CONCURRENCY]
        eng = engine[f"{key}_engine"]
        wrk = single.get(kind, {}).get("wrk")
        measured = wrk or results[kind][1]
        client = "wrk" if wrk else "the aiohttp client"
        rows.append(Row(f"{kind}: warm service p50 at concurrency 1 ({client}) beside the HTTP floor "
                        "(`GET /healthcheck`, same client)", f"p50 {_ms(measured['p50_s'])}",
                        f"floor p50 {_ms(floor['p50_s'])}", f"{measured['p50_s'] / floor['p50_s']:.1f}× floor",
                        "reported (no target)", None if not measured["errors"] else False))
        rows.append(Row(f"{kind}: … the in-process engine time per event (median of each event's best pass)",
                        _ms(eng), "", f"{measured['p50_s'] / eng:.1f}× engine", "info", None))
        if wrk:
            aio = results[kind][1]["p50_s"]
            rows.append(Row(f"{kind}: … the same from the aiohttp client (its own Python time per answer included)",
                            f"p50 {_ms(aio)}", "", f"{aio / eng:.1f}× engine", "info", None))
        handler = single.get(kind, {}).get("handler_s")
        if handler is not None:
            rows.append(Row(f"{kind}: … of which the service's handler (mean, `/metrics`: body, job, module lookup, "
                            "frames, JSON; no HTTP parsing or socket writes)", _ms(handler), "",
                            f"{handler / eng:.1f}× engine", "info", None))
        rows.append(Row(f"{kind}: … our request code in process (parse + frames + response, no HTTP/JSON/lookup)",
                        _ms(engine[f"{key}_code"]), "", f"{engine[f'{key}_code'] / eng:.1f}× "
                        "engine", "info", None))
    rows.append(_ratio_row(f"isolation: p99 while {SLOW_REQUESTS} requests scrape an origin answering after "
                           f"{SLOW_DELAY_S:g} s (mixed load, concurrency {ISOLATION_C})", slow, quiet_1, SLOW_TARGET))
    size_gb = big_path.stat().st_size / 1e9
    rows.append(_ratio_row(f"isolation: p99 while a {size_gb:.2f} GB debug file converts in a worker (mixed load, "
                           f"concurrency {ISOLATION_C})", big_run, quiet_2, BIG_TARGET))
    return rows


def _notes(quick: bool, inp_js: Any, inp_nat: Any, big_path: Path, n_events: int, window: float, iso_window: float,
           upload_s: float, big_upload_s: float, results: dict[str, dict[int, dict[str, Any]]]) -> list[str]:
    cpu = {k: sum(r["client_cpu_s"] for r in by_c.values()) / sum(r["window_s"] for r in by_c.values())
           for k, by_c in results.items()}
    return [
        f"Inputs: JS events of {JS_FRAMES} frames in `{inp_js.minified.name}` (map "
        f"{inp_js.sourcemap.stat().st_size / 1e6:.1f} MB, found by release + URL in an uploaded artifact bundle); "
        f"native events of one {NATIVE_FRAMES}-frame thread over 5 modules (the bench program with "
        f"{inp_nat.dwarf_bytes / 2**20:.1f} MiB of DWARF, and the fixtures cpp_gcc_O2_dwarf5, cpp_clang_O2_dwarf5, "
        f"rust_v0, libfixture.so), 8 frames each at `.symtab`-sampled return addresses. {n_events} distinct events "
        "of each kind, cycled by the client.",
        "Service: `symbolicator serve` in its own process, local storage, a fresh cache, default workers "
        f"({os.cpu_count()} conversion processes); config changes from the defaults: "
        f"`limits.max_concurrent_jobs = {MAX_JOBS}` (the default 200 answers 503 to 56 of 256 concurrent requests), "
        "`fetch.allow_private_addresses = true` (the slow origin is on 127.0.0.1, as in the tests), "
        f"`fetch.per_host_concurrency = {SLOW_REQUESTS}` (the default 8 would hold 12 of the 20 scrapes in a queue, "
        "not at the origin), read timeout 30 s. Uploads through `symbolicator upload` (chunked protocol): "
        f"bundle + 5 modules {upload_s:.1f} s, the big file {big_upload_s:.1f} s.",
        "Warm: every event was answered once before any window (the first request of each kind converted), and the "
        "answers were checked (rows marked sanity). Load: `bench/load_client.py` in its own process, closed loop: "
        f"*concurrency* requests always in flight, {window:g} s windows; events/s = completed events ÷ window; "
        "p50/p99 = nearest-rank percentiles of the round-trip times of completed events, measured by the client; "
        "anything but HTTP 200 with `status: completed` counts as an error. The client shares the machine's "
        f"{os.cpu_count()} cores with the service: it used {cpu['JS']:.2f} (JS) and {cpu['native']:.2f} (native) "
        "CPU-seconds per second of window on average.",
        "Warm p50: service p50 round trip at concurrency 1 (HTTP on loopback, JSON both ways, the job, module lookup "
        "with its index reads, our request code, the engine), measured by `wrk` (C, `bench/wrk_post.lua`, the same "
        "events in turn; the best p50 of 5 windows of half the load window, as the engine side counts its best pass) "
        "when it is installed, else by the aiohttp client. Reported beside the HTTP floor (`GET /healthcheck` at "
        "concurrency 1 from the same client) and the in-process engine time for the same events (median over "
        "events of each event's best of several passes, caches warm; measured before the service starts and again "
        "after the load, the lower of the two counts; `service_engine.py` lists the engine calls), with no target: "
        "issue 11 retired issue 5's \"≤ 2× the engine\", which sat below the floor.",
        processes.note(quick),
        f"Isolation: the same mixed load (JS and native events alternating) at concurrency {ISOLATION_C} in "
        f"{iso_window:g} s windows, quiet and disturbed windows interleaved; the ratio is the p99 of all disturbed "
        "windows' latencies pooled ÷ the p99 of the quiet ones pooled (a p99 of one short window rests on a handful "
        f"of requests). Slow origin: {SLOW_ROUNDS[quick]} rounds of (quiet window, window opened by {SLOW_REQUESTS} "
        "JS requests whose files exist only on an aiohttp server on 127.0.0.1 that answers after "
        f"{SLOW_DELAY_S:g} s; URLs distinct in every round: no coalescing, no cached scrape). Big file (once: its "
        "conversion is cached afterwards): quiet window, disturbed window, quiet window. Big file: "
        f"{big_path.stat().st_size / 1e9:.2f} GB = the bench program (its DWARF) + "
        f"{BIG_PAYLOAD_MIB[quick]} MiB of random non-DWARF payload added with `objcopy --add-section` under a new "
        "build-id (a 1 GB-DWARF file would need ~14 GB of RAM to convert here); one native request for it opens the "
        "window, which closes when that request has answered (download into the cache + conversion). A disturbed "
        "run with errors or a failed background request fails its row.",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.service_load", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small inputs and short windows")
    parser.add_argument("--no-profile", action="store_true", help="no py-spy profile of a missed target")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    section = run(args.quick, log, profile=not args.no_profile)
    lines = [f"## {section.title}", "", *section.notes, "", *table(section.rows)]
    for figure, text in section.profiles.items():
        lines += ["", f"### Profile: {figure}", "", "```", text, "```"]
    lines += ["", "### Samples", ""] + [f"- {k}: {v}" for k, v in section.samples.items()]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
