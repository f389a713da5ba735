"""The worker pool survives a worker that dies mid-job (a crash in a C extension, the OOM killer)."""

from __future__ import annotations

import asyncio

import pytest

from symbolicator.service.workers import WorkerCrashed, WorkerPool
from tests.support import worker_jobs


async def test_a_killed_worker_fails_its_job_and_the_pool_restarts() -> None:
    pool = WorkerPool(2)
    try:
        await pool.warm()
        before = {await pool.run(worker_jobs.pid) for _ in range(4)}
        with pytest.raises(WorkerCrashed):
            await pool.run(worker_jobs.die)
        assert pool.restarts == 1
        results = await asyncio.gather(*(pool.run(worker_jobs.square, i) for i in range(20)))
        assert results == [i * i for i in range(20)]
        after = {await pool.run(worker_jobs.pid) for _ in range(4)}
        assert not before & after, "the broken pool's processes must not be reused"
    finally:
        pool.close()


async def test_jobs_in_flight_when_a_worker_dies_fail_fast_and_later_jobs_succeed() -> None:
    pool = WorkerPool(2)
    try:
        outcomes = await asyncio.gather(pool.run(worker_jobs.die), pool.run(worker_jobs.square, 3),
                                        return_exceptions=True)
        assert any(isinstance(o, WorkerCrashed) for o in outcomes)
        assert all(o == 9 or isinstance(o, WorkerCrashed) for o in outcomes)
        assert await asyncio.wait_for(pool.run(worker_jobs.square, 7), 30) == 49
    finally:
        pool.close()
