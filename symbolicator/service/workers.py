"""The worker process pool for CPU work: parsing, DWARF and source-map conversion.

Conversions are CPU-bound Python, so they run in processes, never on the event
loop. A worker that dies (a crash in a C extension, the OOM killer, SIGKILL)
breaks a `ProcessPoolExecutor` for good; this wrapper notices, replaces the
pool, and reports the failed job as `WorkerCrashed` so the request can answer
with a status instead of hanging, and the next job runs on a fresh pool.

The other way round matters too: a pool worker blocks on its job queue forever,
so when the *service* is killed the workers would live on as orphans. Workers
are direct children (`spawn`) and each watches its parent: once re-parented, it exits.

Each worker runs under a memory limit (`limits.worker_max_memory_bytes`, set as
RLIMIT_DATA in the worker: heap and private mappings, not the memory-mapped input
files), so one hostile file cannot take the machine. Hitting it raises
`MemoryError` in Python code, reported as `WorkerOutOfMemory`; C code that cannot
allocate (tree-sitter crashes) kills the worker. When a worker dies, every job the
broken pool held fails with it, not only the culprit's. So each of them runs once
more *alone*, one at a time in a one-worker quarantine pool (started on demand,
closed when no retry waits): an innocent job then succeeds, and the job that
kills its worker there too is the culprit (`WorkerCrashed`), having taken nobody
else down the second time. After every job the worker hands its freed heap back
to the system (`malloc_trim`): a conversion's many small allocations (a syntax
tree) would otherwise stay in the idle worker's RSS.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import importlib
import logging
import multiprocessing
import os
import resource
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import lru_cache
from typing import Any, TypeVar

from symbolicator.errors import WorkerCrashed, WorkerOutOfMemory

log = logging.getLogger(__name__)
T = TypeVar("T")


WARM_MODULES = ("symbolicator.native.symcache_build", "symbolicator.sourcemaps.smcache",
                "symbolicator.sourcemaps.scopes")


PARENT_CHECK_S = 0.5


def _init_worker(parent_pid: int, max_memory: int) -> None:
    """Worker initializer: cap our memory, and leave as soon as the service that started us is gone."""
    if max_memory:
        resource.setrlimit(resource.RLIMIT_DATA, (max_memory, max_memory))
    _exit_with_parent(parent_pid)


def _exit_with_parent(parent_pid: int) -> None:
    """Leave as soon as the service that started us is gone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(PARENT_CHECK_S)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _job(fn: Callable[..., T], *args: Any) -> T:
    """What a worker runs: the job, then its freed memory back to the system."""
    try:
        return fn(*args)
    finally:
        _malloc_trim()


def _malloc_trim() -> None:
    trim = _trim_function()
    if trim is not None:
        trim(0)


@lru_cache(maxsize=1)
def _trim_function() -> Callable[[int], int] | None:
    """glibc's `malloc_trim` (None elsewhere); looked up once: `find_library` runs `ldconfig`."""
    libc = ctypes.util.find_library("c")
    return getattr(ctypes.CDLL(libc), "malloc_trim", None) if libc else None


def _import_all(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


class WorkerPool:
    def __init__(self, workers: int, max_memory: int = 0) -> None:
        self.workers = workers
        self.max_memory = max_memory
        self._context = multiprocessing.get_context("spawn")
        self._pool = self._new_pool()
        self.restarts = 0
        self._quarantine: ProcessPoolExecutor | None = None
        self._quarantine_turn = asyncio.Lock()
        self._quarantine_waiting = 0

    def _new_pool(self, workers: int | None = None) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers or self.workers, mp_context=self._context,
                                   initializer=_init_worker, initargs=(os.getpid(), self.max_memory))

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(*args)` in a worker; once more alone when its pool broke (see the module docstring)."""
        pool = self._pool
        try:
            return await self._submit(pool, fn, *args)
        except BrokenProcessPool:
            self._replace(pool)
        log.warning("a worker process died under %s; running it once more, alone", getattr(fn, "__name__", fn))
        return await self._run_alone(fn, *args)

    async def _submit(self, pool: ProcessPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, _job, fn, *args)
        except MemoryError as exc:
            raise WorkerOutOfMemory(f"the conversion ran out of memory (worker limit {self.max_memory} bytes)") \
                from exc

    async def _run_alone(self, fn: Callable[..., T], *args: Any) -> T:
        self._quarantine_waiting += 1
        try:
            await self._quarantine_turn.acquire()
        finally:
            self._quarantine_waiting -= 1
        try:
            if self._quarantine is None:
                self._quarantine = self._new_pool(1)
            try:
                return await self._submit(self._quarantine, fn, *args)
            except BrokenProcessPool as exc:
                self._quarantine.shutdown(wait=False, cancel_futures=True)
                self._quarantine = None
                self.restarts += 1
                raise WorkerCrashed("the worker process died while converting, also when run alone") from exc
        finally:
            if self._quarantine is not None and not self._quarantine_waiting:
                self._quarantine.shutdown(wait=False)
                self._quarantine = None
            self._quarantine_turn.release()

    def _replace(self, pool: ProcessPoolExecutor) -> None:
        if pool is self._pool:
            log.error("a worker process died; restarting the pool")
            self.restarts += 1
            self._pool = self._new_pool()
            pool.shutdown(wait=False, cancel_futures=True)

    async def warm(self, modules: tuple[str, ...] = WARM_MODULES) -> None:
        """Start every worker and import the engines now, not on the first request's clock."""
        await asyncio.gather(*(self.run(_import_all, modules) for _ in range(self.workers)),
                             return_exceptions=True)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._quarantine is not None:
            self._quarantine.shutdown(wait=False, cancel_futures=True)
