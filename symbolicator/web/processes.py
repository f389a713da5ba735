"""`serve --processes N`: N service processes on one port, so more than one core answers.

Frame mapping and JSON run on each process's event loop, so one process tops out
at one core. The supervisor (the process `serve` started in) starts N children,
each a plain `symbolicator serve` with the same arguments plus `--child-of`:

* **One port, no proxy.** Every child binds the address itself with
  `SO_REUSEPORT`, and the kernel spreads new connections over them. The
  supervisor holds no socket and handles no request.
* **One disk cache.** The children open the same cache folder. `get_or_compute`
  takes a per-key file lock there (`caching/keylock.py`), so N processes asked for
  one file at once download and convert it once; the others wait on the lock and
  read the stored result.
* **One `/metrics`.** The supervisor gives the children a fresh folder for
  prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`, under the
  cache folder); whichever child answers `/metrics` sums the counters and
  histograms of all of them, those of children that exited included.
  `symbolicator_process_http_requests` stays per process (label `pid`).
* **Children die with the supervisor.** SIGTERM or SIGINT to the supervisor is
  passed on as SIGTERM, children shut down as a single `serve` does, and the ones
  still running after `STOP_GRACE_S` are killed. A child also asks the kernel for
  SIGTERM when the supervisor dies (`PR_SET_PDEATHSIG`, so a SIGKILLed supervisor
  leaves no orphans) and watches its parent's pid as a fallback. A child that
  exits or is killed is started again; one that exits with an error status within
  `STARTUP_S` of its start (a port taken, a bad setting) stops them all, with status 1.

Each child has its own worker pool of `workers` processes: N × `workers` in all.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType

from symbolicator.config import Settings
from symbolicator.metrics import MULTIPROC_ENV
from symbolicator.pids import process_alive

log = logging.getLogger(__name__)

STOP_GRACE_S = 20.0
STARTUP_S = 5.0
PARENT_CHECK_S = 0.5
_PR_SET_PDEATHSIG = 1


def metrics_dir(settings: Settings) -> Path:
    """A fresh multiprocess-metrics folder for this supervisor; those of supervisors gone are removed."""
    root = settings.cache.dir / "metrics"
    root.mkdir(parents=True, exist_ok=True)
    for old in root.iterdir():
        if old.name.isdigit() and not process_alive(int(old.name)):
            shutil.rmtree(old, ignore_errors=True)
    mine = root / str(os.getpid())
    shutil.rmtree(mine, ignore_errors=True)
    mine.mkdir()
    return mine


def supervise(settings: Settings, processes: int, child_args: list[str]) -> int:
    """Run `processes` children (`python -m symbolicator serve *child_args --child-of PID`) until signalled."""
    folder = metrics_dir(settings)
    env = {**os.environ, MULTIPROC_ENV: str(folder)}
    argv = [sys.executable, "-m", "symbolicator", "serve", *child_args, "--child-of", str(os.getpid())]
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    children: dict[int, subprocess.Popen[bytes]] = {}
    started_at: dict[int, float] = {}
    status = 0
    try:
        for slot in range(processes):
            children[slot] = subprocess.Popen(argv, env=env)
            started_at[slot] = time.monotonic()
        log.info("serving with %d processes: %s", processes, ", ".join(str(c.pid) for c in children.values()))
        while not stopping.wait(0.2):
            for slot, child in list(children.items()):
                if child.poll() is None:
                    continue
                # A child that fails on its own right after starting (a port taken, a bad setting)
                # would fail again; one killed by a signal is replaced whenever it dies.
                if child.returncode > 0 and time.monotonic() - started_at[slot] < STARTUP_S:
                    log.error("service process %d exited with %s while starting; stopping", child.pid,
                              child.returncode)
                    status = 1
                    stopping.set()
                    break
                log.warning("service process %d exited with %s; starting another", child.pid, child.returncode)
                _forget_metrics(folder, child.pid)
                children[slot] = subprocess.Popen(argv, env=env)
                started_at[slot] = time.monotonic()
    finally:
        _stop_all(list(children.values()))
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(folder, ignore_errors=True)
    return status


def _stop_all(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("service process %d did not stop within %.0f s; killing it", child.pid, STOP_GRACE_S)
            child.kill()
            child.wait()


def _forget_metrics(folder: Path, pid: int) -> None:
    """Drop a dead child's per-process gauges (its counters keep counting in the sums)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


def die_with_parent(parent_pid: int) -> None:
    """In a child: SIGTERM to ourselves when the supervisor is gone (kernel request, plus a watch thread)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # pragma: no cover - not Linux
        pass

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="supervisor-watch", daemon=True).start()
