"""The worker pool survives a worker that dies mid-job (a crash in a C extension, the OOM killer), and a
job that dies fails alone: the jobs that shared the broken pool run again."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from symbolicator.service.workers import WorkerCrashed, WorkerOutOfMemory, WorkerPool
from tests.support import worker_jobs
from tests.support.service import child_pids


async def test_a_killed_worker_fails_its_job_and_the_pool_restarts() -> None:
    pool = WorkerPool(2)
    try:
        await pool.warm()
        before = {await pool.run(worker_jobs.pid) for _ in range(4)}
        with pytest.raises(WorkerCrashed):
            await pool.run(worker_jobs.die)
        assert pool.restarts == 2, "run once more, alone, then reported"
        results = await asyncio.gather(*(pool.run(worker_jobs.square, i) for i in range(20)))
        assert results == [i * i for i in range(20)]
        after = {await pool.run(worker_jobs.pid) for _ in range(4)}
        assert not before & after, "the broken pool's processes must not be reused"
    finally:
        pool.close()


async def test_only_the_job_that_kills_its_worker_fails() -> None:
    """The other jobs were running or queued when the pool broke: they run again, alone, and succeed."""
    pool = WorkerPool(2)
    try:
        await pool.warm()
        outcomes = await asyncio.gather(pool.run(worker_jobs.die_after, 0.5), pool.run(worker_jobs.slow_square, 3, 2.0),
                                        pool.run(worker_jobs.slow_square, 4, 0.1), return_exceptions=True)
        assert isinstance(outcomes[0], WorkerCrashed)
        assert outcomes[1:] == [9, 16]
        assert await asyncio.wait_for(pool.run(worker_jobs.square, 7), 30) == 49
    finally:
        pool.close()


async def test_a_job_over_the_memory_limit_fails_alone_and_the_worker_serves_on() -> None:
    pool = WorkerPool(1, max_memory=300 * 1024 * 1024)
    try:
        assert await pool.run(worker_jobs.allocate, 100 * 1024 * 1024) == 100 * 1024 * 1024
        with pytest.raises(WorkerOutOfMemory):
            await pool.run(worker_jobs.allocate, 400 * 1024 * 1024)
        assert await pool.run(worker_jobs.allocate, 100 * 1024 * 1024) == 100 * 1024 * 1024
        assert pool.restarts == 0
    finally:
        pool.close()


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "State:\tZ" not in state


def test_workers_leave_when_the_service_is_killed(service_factory: Any, tmp_path: Path) -> None:
    svc = service_factory({"storage": {"local_dir": str(tmp_path / "uploads")}, "cache": {"dir": str(tmp_path / "c")},
                           "workers": 2})
    assert svc.proc is not None
    deadline = time.monotonic() + 30
    while len(set(child_pids(svc.proc.pid))) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)  # the pool is warmed at start
    workers = set(child_pids(svc.proc.pid))
    assert len(workers) >= 2
    svc.kill()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [p for p in workers if _alive(p)], "worker processes outlived the killed service"
