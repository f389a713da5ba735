"""What every chaos scenario needs: a service to break, its memory watched, load from another process, a result.

- `service_settings` is the service the fault tests use (`native_settings`:
  local uploads, a token for `acme/*`, one worker), on S3 when given a SeaweedFS.
- `MemorySampler` reads `/proc/<pid>/status` of the service and every process
  below it (conversion workers, multiprocessing's resource tracker) twice a
  second: the peak of their summed VmRSS, and the highest VmHWM. Past `limit_kib`
  it kills the service: the machine is shared, and a service that grows without
  bound has already failed the scenario.
- `LoadRun` starts `python -m chaos.load` with a spec and reads its report.
- `Result` is what a scenario reports: what was injected, every request counted
  by outcome, the checks made (each passed or not), recovery time, peak RSS.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

from chaos.inject import RestartableSeaweed, children, memory_kib
from tests.support.service import ServiceProcess
from tests.support.native_service import native_settings

REPO = Path(__file__).resolve().parent.parent
TOKEN_SCOPES = ["acme/*"]
TIMELINE_S = 5.0


def service_settings(root: Path, weed: RestartableSeaweed | None = None, bucket: str = "chaos",
                     **extra: Any) -> dict[str, Any]:
    settings = native_settings(root, **extra)
    for token in settings["auth"]["tokens"].values():
        token["scopes"] = TOKEN_SCOPES
    if weed is not None:
        settings["storage"] = {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": weed.endpoint_url,
                                                         "region": weed.region}}
    return settings


def s3_env(weed: RestartableSeaweed) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key}


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            out.append(child)
            todo.append(child)
    return out


@dataclass
class Memory:
    """Peak summed VmRSS of the service and its children, highest VmHWM of one of them (MiB)."""

    peak_rss_mib: float = 0.0
    peak_hwm_mib: float = 0.0
    samples: int = 0
    over_limit: bool = False
    timeline: list[tuple[float, float]] = field(default_factory=list)
    """(seconds since sampling started, summed VmRSS in MiB), every `TIMELINE_S` seconds."""


class MemorySampler:
    """Samples the process tree of `pid_of()` (it changes when the service restarts) until `stop()`."""

    def __init__(self, pid_of: Callable[[], int | None], interval_s: float = 0.5,
                 limit_kib: int | None = None) -> None:
        self.pid_of = pid_of
        self.interval_s = interval_s
        self.limit_kib = limit_kib
        self.memory = Memory()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started, next_point = time.monotonic(), 0.0
        while not self._stop.wait(self.interval_s):
            pid = self.pid_of()
            if pid is None:
                continue
            rss_total, hwm = 0, 0
            for p in [pid, *descendants(pid)]:
                rss, peak = memory_kib(p)
                rss_total += rss
                hwm = max(hwm, peak)
            m = self.memory
            m.samples += 1
            m.peak_rss_mib = max(m.peak_rss_mib, rss_total / 1024)
            m.peak_hwm_mib = max(m.peak_hwm_mib, hwm / 1024)
            if (elapsed := time.monotonic() - started) >= next_point:
                m.timeline.append((round(elapsed, 1), round(rss_total / 1024)))
                next_point += TIMELINE_S
            if self.limit_kib is not None and rss_total > self.limit_kib:
                m.over_limit = True
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass


def pid_of(svc: ServiceProcess) -> Callable[[], int | None]:
    return lambda: svc.proc.pid if svc.proc is not None and svc.proc.poll() is None else None


class LoadRun:
    """`python -m chaos.load` in its own process, started now; `report()` waits for it."""

    def __init__(self, spec: dict[str, Any], workdir: Path) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.spec_path = workdir / "load-spec.json"
        self.out_path = workdir / "load-report.json"
        self.spec_path.write_text(json.dumps(spec))
        self.proc = subprocess.Popen([sys.executable, "-m", "chaos.load", str(self.spec_path), str(self.out_path)],
                                     cwd=REPO)

    def report(self, timeout: float | None = None) -> dict[str, Any]:
        try:
            self.proc.wait(timeout)
        finally:
            self.stop()
        if self.proc.returncode != 0:
            raise RuntimeError(f"the load client failed with status {self.proc.returncode}")
        return json.loads(self.out_path.read_text())  # type: ignore[no-any-return]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Result:
    """One scenario's figures. `requests` maps a kind of request to its outcomes and their counts."""

    name: str
    injected: str
    started: float = field(default_factory=time.time)
    duration_s: float = 0.0
    requests: dict[str, dict[str, int]] = field(default_factory=dict)
    checks: list[tuple[str, bool]] = field(default_factory=list)
    recovery_s: dict[str, float] = field(default_factory=dict)
    memory: Memory = field(default_factory=Memory)
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and all(passed for _, passed in self.checks)

    def check(self, what: str, passed: bool) -> bool:
        self.checks.append((what, bool(passed)))
        return bool(passed)

    def count(self, kind: str, outcome: str, n: int = 1) -> None:
        outcomes = self.requests.setdefault(kind, {})
        outcomes[outcome] = outcomes.get(outcome, 0) + n

    def add_load(self, report: dict[str, Any], prefix: str = "") -> None:
        for name, kind in report["kinds"].items():
            for outcome, n in kind["outcomes"].items():
                self.count(prefix + name, outcome, n)

    @property
    def sent(self) -> int:
        return sum(sum(o.values()) for o in self.requests.values())

    @property
    def answered(self) -> int:
        return sum(n for o in self.requests.values() for outcome, n in o.items()
                   if not outcome.startswith(("lost", "unanswered")))

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "injected": self.injected, "ok": self.ok, "duration_s": round(self.duration_s, 1),
                "sent": self.sent, "answered": self.answered, "requests": self.requests,
                "checks": [[what, passed] for what, passed in self.checks], "recovery_s": self.recovery_s,
                "memory": vars(self.memory), "figures": self.figures, "notes": self.notes, "error": self.error}


def say(message: str) -> None:
    """Progress on stderr, so stdout stays clean."""
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
