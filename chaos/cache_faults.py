"""Scenario `cache-faults`: cache files corrupted on disk, and the cache disk full under load.

Corruption: with the cache warm, the symcache gets 64 bytes flipped in the
middle (its size unchanged) and the sourcemap cache is cut in half, once while
the service is stopped (the restarted service must not trust them) and once
while it runs and has them open. Each time the next requests must get the right
answer and the damaged files must leave the cache (rebuilt, not served).

Full disk: the cache folder is a 16 MiB tmpfs in a private mount namespace
(`chaos.inject.PrivateTmpfs`). Under a steady load of warm requests it is
filled to the last byte; cold requests (a debug file and a bundle never
converted) are tried while it is full; then it is freed, and the cold requests
must succeed without a restart. Finally the service is restarted on a full disk,
where even reading a cache entry cannot record its access time.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import requests

from chaos.inject import PrefixedService, PrivateTmpfs, corrupt, wait_for
from chaos.load import frames_as
from chaos.rig import LoadRun, MemorySampler, Result, pid_of, say, service_settings
from chaos.workload import (
    COLD_ELF,
    SCOPE,
    WARM_ELF,
    WARM_FUNCTIONS,
    derived_caches,
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
from tests.support.native_service import metric


def _answers(svc: ServiceProcess) -> tuple[bool, str]:
    """Whether warm native and JS answers are right; an outcome label."""
    try:
        native = post(svc, "/symbolicate", native_body(WARM_ELF, WARM_FUNCTIONS))
        js = post(svc, "/symbolicate-js", js_body())
    except requests.ConnectionError:
        return False, "lost: the service died"
    if native.status_code != 200 or js.status_code != 200:
        return False, f"http {native.status_code}/{js.status_code}"
    ok = native_ok(native.json(), WARM_FUNCTIONS) and js_ok(js.json())
    return ok, "right answers" if ok else "wrong answer"


DAMAGE = [  # (when, how the symcache is damaged, how the sourcemap cache is)
    ("at rest", "flip", "truncate"),
    ("while running", "flip", "flip"),
    ("while running", "truncate", "truncate"),
]


def _corruption(root: Path, result: Result) -> None:
    root.mkdir(parents=True, exist_ok=True)
    svc = ServiceProcess(root, service_settings(root))
    cache = root / "cache"
    with svc, MemorySampler(pid_of(svc)) as sampler:
        uploaded(svc, WARM_ELF, js_folder(root))
        ok, _ = _answers(svc)
        result.check("the healthy service's answers are right", ok)
        for when, symcache_how, smcache_how in DAMAGE:
            label = f"{when} ({symcache_how} / {smcache_how})"
            files = derived_caches(cache)
            at_rest = when == "at rest"
            if at_rest:
                svc.stop()
            for path, how in zip(files, (symcache_how, smcache_how)):
                corrupt(path, how)
            if at_rest:
                svc.start()
            before = 0 if at_rest else int(metric(svc, "symbolicator_native_conversions_total"))
            ok, outcome = _answers(svc)
            result.count(f"requests after damage {label}", outcome)
            assert svc.proc is not None
            alive = not wait_for(lambda: svc.proc is not None and svc.proc.poll() is not None,
                                 10 if outcome.startswith("lost") else 0)
            if not alive:
                code = svc.proc.returncode
                why = " (SIGBUS: a lookup read a page of its memory-mapped cache past the truncated end)" \
                    if code == -7 else ""
                result.notes.append(f"damage {label}: the service died, exit status {code}{why}; restarted")
                svc.start()
                before = 0
                ok, outcome = _answers(svc)
                result.count(f"requests after damage {label}, service restarted", outcome)
            rebuilt = not any(p.exists() for p in files) and len(derived_caches(cache)) == 2
            result.count(f"damaged files after damage {label}", "dropped and rebuilt" if rebuilt else "still cached")
            result.check(f"damaged {label}: right answers, damaged files rebuilt and not served, the service up",
                         ok and rebuilt and alive and metric(svc, "symbolicator_native_conversions_total") == before + 1)
    result.memory = sampler.memory


def _full_disk(root: Path, quick: bool, result: Result) -> None:
    root.mkdir(parents=True, exist_ok=True)
    load_s = 10.0 if quick else 30.0
    with PrivateTmpfs(root / "cache", 16 << 20) as tmpfs:
        svc = PrefixedService(root, service_settings(root), tmpfs.prefix)
        with svc, MemorySampler(pid_of(svc)) as sampler:
            assert svc.proc is not None
            pid = svc.proc.pid
            uploaded(svc, WARM_ELF, COLD_ELF, js_folder(root))
            uploaded(svc, js_folder(root / "v2"), release="2.0")
            native, js = native_body(WARM_ELF, WARM_FUNCTIONS), js_body()
            base_native, base_js = symbolicated(svc, "/symbolicate", native), symbolicated(svc, "/symbolicate-js", js)
            fields_n, fields_j = ["status", "function", "lineno"], ["abs_path", "lineno", "colno"]
            spec: dict[str, Any] = {
                "url": svc.url, "scope": SCOPE, "clients": 8, "duration_s": load_s, "wait_s": 10, "drain_s": 60,
                "kinds": [
                    {"name": "warm native (disk full part of the time)", "path": "/symbolicate", "bodies": [native],
                     "check": {"fields": fields_n, "values": frames_as(base_native, fields_n)}},
                    {"name": "warm JS (disk full part of the time)", "path": "/symbolicate-js", "bodies": [js],
                     "check": {"fields": fields_j, "values": frames_as(base_js, fields_j)}},
                ],
            }
            load = LoadRun(spec, root)
            time.sleep(2.0)
            say("cache-faults: filling the cache disk")
            result.figures["bytes written to fill the 16 MiB cache tmpfs"] = tmpfs.fill()
            cold_native, cold_js = native_body(COLD_ELF, ["main"]), js_body(release="2.0")
            full_until = time.monotonic() + load_s / 2
            while time.monotonic() < full_until:
                r = post(svc, "/symbolicate", cold_native)
                a = r.json()
                result.count("cold native while the disk is full", f"http {r.status_code}" if r.status_code != 200 else
                             f"{a['status']}, module {module_of(a)['debug_status']}" if a["status"] == "completed"
                             else a["status"])
                r = post(svc, "/symbolicate-js", cold_js)
                a = r.json()
                errors = ",".join(sorted({e["type"] for e in a.get("errors", [])}))
                result.count("cold JS while the disk is full", f"http {r.status_code}" if r.status_code != 200 else
                             f"completed, errors: {errors or 'none'}" if a["status"] == "completed" else a["status"])
                time.sleep(1.0)
            tmpfs.free()
            say("cache-faults: cache disk freed")
            after_native = post(svc, "/symbolicate", cold_native).json()
            after_js = post(svc, "/symbolicate-js", cold_js).json()
            result.check("once freed, cold requests convert and succeed without a restart",
                         native_ok(after_native, ["main"]) and js_ok(after_js))
            report = load.report(timeout=load_s + 120)
            result.add_load(report)
            result.check("every warm request under the full disk got the right answer",
                         all(set(k["outcomes"]) <= {"completed"} for k in report["kinds"].values()))
            colds = result.requests.get("cold native while the disk is full", {})
            result.check("cold native requests on the full disk got a module status (`other`)",
                         bool(colds) and set(colds) == {"completed, module other"})
            cold_js_outcomes = result.requests.get("cold JS while the disk is full", {})
            result.check("cold JS requests on the full disk got per-frame errors",
                         bool(cold_js_outcomes) and all(o.startswith("completed, errors:") and "none" not in o
                                                        for o in cold_js_outcomes))
            result.check("the service was not restarted", svc.proc.poll() is None and svc.proc.pid == pid)

            tmpfs.fill()
            svc.stop()
            svc.start()
            tmpfs.fill()
            ok, outcome = _answers(svc)
            result.count("warm requests after a restart on the full disk", outcome)
            result.check("a service restarted on the full disk serves what is cached", ok)
        result.memory.peak_rss_mib = max(result.memory.peak_rss_mib, sampler.memory.peak_rss_mib)
        result.memory.peak_hwm_mib = max(result.memory.peak_hwm_mib, sampler.memory.peak_hwm_mib)


def run(root: Path, quick: bool) -> Result:
    result = Result("cache-faults", "derived cache files damaged (64 bytes flipped, or cut in half) at rest and "
                    "while the service runs; the cache folder a 16 MiB tmpfs filled to the last byte under load")
    _corruption(root / "corruption", result)
    try:
        _full_disk(root / "full", quick, result)
    except OSError as exc:
        result.notes.append(f"full disk part skipped: {exc}")
    return result
