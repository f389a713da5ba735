"""Scenario `seaweed-outage`: SeaweedFS stopped under steady load, then started again.

The service runs on a real SeaweedFS with a debug file and a JS bundle uploaded
and converted. A load client keeps 16 clients sending those warm requests
(native and JS) before, during and after the outage; each answer is checked
against the healthy service's (itself checked against the symbol table and
Node). While S3 is down the runner also tries, every 2 s, what needs it: an
upload (a chunk, a debug-file assemble) and a cold native request. After weed
is back (same ports, same data) it measures how long the service takes to take
uploads again, with no restart, and uploads the file that was refused.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import requests

from chaos.inject import RestartableSeaweed
from chaos.load import frames_as
from chaos.rig import (
    LoadRun,
    MemorySampler,
    Result,
    pid_of,
    s3_env,
    say,
    service_settings,
)
from chaos.workload import (
    COLD_ELF,
    SCOPE,
    TOKEN,
    WARM_ELF,
    WARM_FUNCTIONS,
    cli_upload,
    js_body,
    js_folder,
    js_ok,
    module_of,
    native_body,
    native_ok,
    post,
    symbolicated,
    uploaded,
)
from tests.support.service import ServiceProcess

FIELDS = {"native": ["status", "function", "abs_path", "lineno"], "js": ["abs_path", "lineno", "colno", "function"]}


def _upload_attempt(svc: ServiceProcess) -> requests.Response:
    data = COLD_ELF.read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    org = SCOPE.split("/")[0]
    return requests.post(f"{svc.url}/api/0/organizations/{org}/chunk-upload/", timeout=60,
                         headers={"Authorization": f"Bearer {TOKEN}"},
                         files=[("file", (sha1, data, "application/octet-stream"))])


def _phase(t: float, outage: tuple[float, float]) -> str:
    return "before" if t < outage[0] else "during" if t < outage[1] else "after"


def run(root: Path, quick: bool) -> Result:
    outage_s, before_s, after_s = (5.0, 3.0, 5.0) if quick else (60.0, 5.0, 15.0)
    result = Result("seaweed-outage", f"SeaweedFS (`weed server`, S3 backend of the service) stopped with SIGTERM/"
                    f"SIGKILL for {outage_s:.0f} s under a steady load of 16 clients, then started again on the "
                    "same ports with the same data folder")
    with RestartableSeaweed(root / "weed") as weed:
        weed.make_bucket("chaos")
        svc = ServiceProcess(root, service_settings(root, weed), env=s3_env(weed))
        with svc, MemorySampler(pid_of(svc)) as sampler:
            assert svc.proc is not None
            pid = svc.proc.pid
            uploaded(svc, WARM_ELF, js_folder(root))
            native, js = native_body(WARM_ELF, WARM_FUNCTIONS), js_body()
            base_native, base_js = symbolicated(svc, "/symbolicate", native), symbolicated(svc, "/symbolicate-js", js)
            if not result.check("the healthy service's answers are right (symbol table, node)",
                                native_ok(base_native, WARM_FUNCTIONS) and js_ok(base_js)):
                return result
            stop_file = root / "stop-load"
            spec: dict[str, Any] = {
                "url": svc.url, "scope": SCOPE, "clients": 16, "duration_s": 900, "stop_file": str(stop_file),
                "wait_s": 10, "drain_s": 120, "request_timeout_s": 60, "events": True,
                "kinds": [
                    {"name": "warm native", "path": "/symbolicate", "bodies": [native],
                     "check": {"fields": FIELDS["native"], "values": frames_as(base_native, FIELDS["native"])}},
                    {"name": "warm JS", "path": "/symbolicate-js", "bodies": [js],
                     "check": {"fields": FIELDS["js"], "values": frames_as(base_js, FIELDS["js"])}},
                ],
            }
            load = LoadRun(spec, root)
            time.sleep(before_s + 1.0)  # the client's own start-up
            say(f"seaweed-outage: stopping SeaweedFS for {outage_s:.0f} s")
            down_at = time.time()
            weed.outage()
            cold = native_body(COLD_ELF, ["main"])
            while time.time() < down_at + outage_s:
                t0 = time.monotonic()
                r = _upload_attempt(svc)
                retry = r.headers.get("Retry-After", "")
                result.count("upload during outage", f"{r.status_code}" + (" + Retry-After" if retry.isdigit() else ""))
                r = post(svc, "/symbolicate", cold)
                outcome = f"http {r.status_code}"
                if r.status_code == 200:
                    outcome = f"module {module_of(r.json())['debug_status']}"
                result.count("cold native during outage", outcome)
                result.figures["slowest cold answer during outage (s)"] = max(
                    result.figures.get("slowest cold answer during outage (s)", 0.0), round(time.monotonic() - t0, 2))
                time.sleep(max(0.0, 2.0 - (time.monotonic() - t0)))
            say("seaweed-outage: starting SeaweedFS again")
            restarted = weed.resume()
            back_at = time.time()
            result.recovery_s["SeaweedFS restart (until S3 takes writes)"] = round(restarted, 1)
            while _upload_attempt(svc).status_code != 200:
                time.sleep(0.1)
            result.recovery_s["service takes uploads again, after S3 is back"] = round(time.time() - back_at, 2)
            status, _ = cli_upload(svc, COLD_ELF)
            result.check("the upload refused during the outage completes when retried", status == 0)
            answer = post(svc, "/symbolicate", cold).json()
            result.check("and its frames symbolicate", answer.get("status") == "completed"
                         and {f["status"] for f in answer["stacktraces"][0]["frames"]} == {"symbolicated"})
            time.sleep(max(0.0, back_at + after_s - time.time()))
            stop_file.touch()
            report = load.report(timeout=200)
            result.check("the service was not restarted", svc.proc.poll() is None and svc.proc.pid == pid)
        result.memory = sampler.memory

    outage = (down_at, back_at)
    by_phase: dict[str, dict[str, int]] = {}
    kinds = list(report["kinds"])
    for start, _, kind, outcome in report["events"]:
        key = f"{kinds[kind]}, {_phase(report['started_at'] + start, outage)} the outage"
        by_phase.setdefault(key, {})
        by_phase[key][outcome] = by_phase[key].get(outcome, 0) + 1
    for key in sorted(by_phase):
        for outcome, n in by_phase[key].items():
            result.count(key, outcome, n)
    during = {k: v for k, v in by_phase.items() if "during" in k}
    result.check("warm requests were sent during the outage", sum(sum(v.values()) for v in during.values()) > 0)
    result.check("every warm request, in every phase, got the right answer",
                 all(set(v) <= {"completed"} for v in by_phase.values()))
    uploads = result.requests.get("upload during outage", {})
    result.check("every upload during the outage answered 503 + Retry-After",
                 bool(uploads) and set(uploads) == {"503 + Retry-After"})
    colds = result.requests.get("cold native during outage", {})
    result.check("every cold request during the outage got a module status (fetching_failed)",
                 bool(colds) and set(colds) == {"module fetching_failed"})
    result.check("nothing lost: every request sent was answered", result.sent == result.answered)
    result.figures["load client"] = {k: {"sent": v["sent"], "latency_s": v["latency_s"]}
                                     for k, v in report["kinds"].items()}
    return result
