"""Scenario `overload`: 500 concurrent clients for 60 s, half of them against misbehaving websites.

Two real websites on 127.0.0.1 (`chaos.origins`, their own process): a slow one
that answers each file (bundle, then its map) only after 10 s, under 64 URLs,
and a huge one that sends a 60 MB bundle, under 4 URLs. The service scrapes
both (loopback allowed in its fetch settings, as the tests do). A separate load
client (`chaos.load`) runs 500 clients: a quarter each on the slow bundles, the
huge ones, an uploaded JS bundle and an uploaded debug file. Every request must
end in an answer (a result, `pending` polled to its end, or 503 + Retry-After),
the right one where the truth is known, and the service's memory (itself and
its workers, sampled from /proc) must stay bounded: past 4 GiB it is killed
and the scenario fails, since the machine is shared.

`overload-slow` is the same load with the huge website left out (a third of
the clients each on the other three kinds): the overload behaviour (503s,
pending and polling, nothing lost) measured apart from what huge bundles cost.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from chaos.load import frames_as
from chaos.rig import (
    REPO,
    LoadRun,
    MemorySampler,
    Result,
    pid_of,
    say,
    service_settings,
)
from chaos.workload import (
    NODE_FRAMES,
    SCOPE,
    WARM_ELF,
    WARM_FUNCTIONS,
    js_body,
    js_folder,
    js_ok,
    native_body,
    native_ok,
    scraped_js_body,
    symbolicated,
    uploaded,
)
from tests.support.service import ServiceProcess

RSS_LIMIT_KIB = 4 * 1024 * 1024
MiB = 1024 * 1024


def _origins(slow: int, huge: int, huge_bytes: int, delay_s: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen([sys.executable, "-m", "chaos.origins", str(slow), str(huge), str(huge_bytes),
                             str(delay_s)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def _stop_load_when_dead(svc: ServiceProcess, stop_file: Path) -> list[float]:
    """Watch the service; when it dies, end the load window (hammering a closed port measures nothing).
    The list gets the seconds it lived, once it has died."""
    died: list[float] = []
    started = time.monotonic()

    def watch() -> None:
        while not stop_file.exists():
            if svc.proc is None or svc.proc.poll() is not None:
                died.append(time.monotonic() - started)
                stop_file.touch()
                return
            time.sleep(0.2)

    threading.Thread(target=watch, name="service-watch", daemon=True).start()
    return died


def run(root: Path, quick: bool) -> Result:
    """The scenario as issue 6 states it: slow and huge websites."""
    clients, duration_s = (50, 10.0) if quick else (500, 60.0)
    slow_variants, huge_variants = (8, 2) if quick else (64, 4)
    return _overload("overload", root, clients, duration_s, slow_variants, huge_variants, 60 * MiB, 10.0)


def run_slow_only(root: Path, quick: bool) -> Result:
    """The same without the huge website: the overload behaviour apart from what 60 MB bundles cost."""
    clients, duration_s = (50, 10.0) if quick else (500, 60.0)
    return _overload("overload-slow", root, clients, duration_s, 8 if quick else 64, 0, 0, 10.0)


def _overload(name: str, root: Path, clients: int, duration_s: float, slow_variants: int, huge_variants: int,
              huge_bytes: int, delay_s: float) -> Result:
    share = "a third" if not huge_variants else "a quarter"
    huge = f", from a huge one ({huge_bytes // MiB} MiB per bundle, {huge_variants} URLs)" if huge_variants else ""
    result = Result(name, f"{clients} concurrent clients for {duration_s:.0f} s; {share} each on bundles from a slow "
                    f"website ({delay_s:.0f} s per file, {slow_variants} URLs){huge}, on uploaded JS and on an "
                    "uploaded debug file")
    origins, urls = _origins(slow_variants, max(1, huge_variants), huge_bytes, delay_s)
    try:
        settings = service_settings(root, workers=2, fetch={"allow_private_addresses": True})
        svc = ServiceProcess(root, settings)
        with svc, MemorySampler(pid_of(svc), interval_s=0.2, limit_kib=RSS_LIMIT_KIB) as sampler:
            uploaded(svc, WARM_ELF, js_folder(root))
            native, js = native_body(WARM_ELF, WARM_FUNCTIONS), js_body()
            base_native, base_js = symbolicated(svc, "/symbolicate", native), symbolicated(svc, "/symbolicate-js", js)
            result.check("the healthy service's answers are right", native_ok(base_native, WARM_FUNCTIONS)
                         and js_ok(base_js))
            positions = [[f["original"]["line"], f["original"]["column"]] for f in NODE_FRAMES]
            huge_frame = {"abs_path": "", "lineno": 1, "colno": 5}
            fn, fj = ["status", "function", "lineno"], ["abs_path", "lineno", "colno"]
            spec: dict[str, Any] = {
                "url": svc.url, "scope": SCOPE, "clients": clients, "duration_s": duration_s, "wait_s": 5,
                "drain_s": 900, "request_timeout_s": 120,
                "kinds": [
                    {"name": "slow website (10 s per file)", "path": "/symbolicate-js",
                     "bodies": [scraped_js_body(f"{urls['slow']}/v{n}/app.js") for n in range(slow_variants)],
                     "check": {"fields": ["lineno", "colno"], "values": positions}},
                    *([{"name": f"huge website ({huge_bytes // MiB} MiB bundle)", "path": "/symbolicate-js",
                        "bodies": [{"stacktraces": [{"frames": [{**huge_frame,
                                                                 "abs_path": f"{urls['huge']}/v{n}/app.js"}]}]}
                                   for n in range(huge_variants)],
                        "check": {"fields": ["lineno", "colno"], "values": [[1, 5]]}}] if huge_variants else []),
                    {"name": "uploaded JS", "path": "/symbolicate-js", "bodies": [js],
                     "check": {"fields": fj, "values": frames_as(base_js, fj)}},
                    {"name": "uploaded native", "path": "/symbolicate", "bodies": [native],
                     "check": {"fields": fn, "values": frames_as(base_native, fn)}},
                ],
            }
            say(f"{name}: {clients} clients for {duration_s:.0f} s (then every request runs to its end)")
            spec["stop_file"] = str(root / "stop-load")
            load = LoadRun(spec, root)
            died = _stop_load_when_dead(svc, root / "stop-load")
            report = load.report()
            result.add_load(report)
            alive = svc.proc is not None and svc.proc.poll() is None
            health = requests.get(f"{svc.url}/healthcheck", timeout=10).status_code if alive else 0
        result.memory = sampler.memory
        if died:
            code = svc.proc.returncode if svc.proc is not None else None
            result.notes.append(f"the service died {died[0]:.0f} s into the load (exit status {code}); the load "
                                "stopped there, and the requests in flight were lost")
    finally:
        origins.terminate()
        out, _ = origins.communicate(timeout=30)
    stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    kinds = report["kinds"]
    outcomes = {o for k in kinds.values() for o in k["outcomes"]}
    result.check("nothing lost: every request sent got an answer", report["sent"] == report["answered"]
                 and not any(o.startswith(("lost", "unanswered")) for o in outcomes))
    result.check("every 503 carried Retry-After", all(k["retry_after_missing"] == 0 for k in kinds.values()))
    result.check("no wrong answer and no error envelope",
                 not any(o == "wrong answer" or o.startswith(("envelope", "http")) for o in outcomes))
    result.check(f"memory stayed under {RSS_LIMIT_KIB // 1024 // 1024} GiB", not result.memory.over_limit)
    result.check("the service is alive and healthy at the end", alive and health == 200)
    result.figures["drain after the load window (s)"] = report["drain_s"]
    result.figures["latency of completed requests (s), by kind"] = {n: k["latency_s"] for n, k in kinds.items()}
    result.figures["polls of pending requests, by kind"] = {n: k["polls"] for n, k in kinds.items()}
    result.figures["websites: requests received and most at once"] = stats
    (root / "stop-load").touch()
    return result
