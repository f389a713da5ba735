"""The worker process pool for CPU work: parsing, DWARF and source-map conversion.

Conversions are CPU-bound Python, so they run in processes, never on the event
loop. A worker that dies (a crash in a C extension, the OOM killer, SIGKILL)
breaks a `ProcessPoolExecutor` for good; this wrapper notices, replaces the
pool, and reports the failed job as `WorkerCrashed` so the request can answer
with a status instead of hanging, and the next job runs on a fresh pool.

The other way round matters too: a pool worker blocks on its job queue forever,
so when the *service* is killed the workers would live on as orphans. Workers
are direct children (`spawn`) and each watches its parent: once re-parented, it exits.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, TypeVar

from symbolicator.errors import SymbolicatorError

log = logging.getLogger(__name__)
T = TypeVar("T")


WARM_MODULES = ("symbolicator.native.symcache_build", "symbolicator.sourcemaps.smcache",
                "symbolicator.sourcemaps.scopes")


PARENT_CHECK_S = 0.5


def _exit_with_parent(parent_pid: int) -> None:
    """Worker initializer: leave as soon as the service that started us is gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


class WorkerCrashed(SymbolicatorError):
    """The worker process running a job died."""


class WorkerPool:
    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._context = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()
        self.restarts = 0

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.workers, mp_context=self._context,
                                   initializer=_exit_with_parent, initargs=(os.getpid(),))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        pool = self._pool
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)
        except BrokenProcessPool as exc:
            if pool is self._pool:
                log.error("a worker process died; restarting the pool")
                self.restarts += 1
                self._pool = self._new_pool()
                pool.shutdown(wait=False, cancel_futures=True)
            raise WorkerCrashed("the worker process died while converting") from exc

    async def warm(self, modules: tuple[str, ...] = WARM_MODULES) -> None:
        """Start every worker and import the engines now, not on the first request's clock."""
        await asyncio.gather(*(self.run(_import_all, modules) for _ in range(self.workers)),
                             return_exceptions=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
