"""Running symbolication requests, for `?timeout=N` and `GET /requests/{id}` polling.

Symbolicator's model, which Sentry's ingest client relies on: every request is
a background job with a random id; the caller waits up to `timeout` seconds and
otherwise gets `pending` + `request_id` + `retry_after: 30`, then long-polls.
A finished result stays readable for 90 s; after that (or after a restart) the
id is unknown, and the client resubmits. Ids are random UUIDs bound to the
scope that created them: polling from another scope looks exactly like an
unknown id, so it reveals nothing.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from symbolicator.errors import FormatError, NotFound, Overloaded
from symbolicator.types import Scope

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30
KEEP_FINISHED_S = 90.0


@dataclass
class Job:
    id: str
    scope: Scope
    task: asyncio.Task[dict[str, Any]]
    finished_at: float | None = None
    result: dict[str, Any] = field(default_factory=dict)


class JobRegistry:
    def __init__(self, max_concurrent: int, job_timeout_s: float) -> None:
        self.max_concurrent = max_concurrent
        self.job_timeout_s = job_timeout_s
        self._jobs: dict[str, Job] = {}
        self._running = 0

    @property
    def running(self) -> int:
        return self._running

    def submit(self, scope: Scope, work: Callable[[], Awaitable[dict[str, Any]]]) -> Job:
        """Start `work` as a job; Overloaded when too many are running already."""
        self._expire()
        if self._running >= self.max_concurrent:
            raise Overloaded(f"maximum number of concurrent requests reached ({self.max_concurrent})")
        job_id = str(uuid.uuid4())
        self._running += 1
        task = asyncio.ensure_future(self._run(work))
        job = Job(job_id, scope, task)
        self._jobs[job_id] = job
        task.add_done_callback(lambda t: self._finished(job, t))
        return job

    async def _run(self, work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            payload = await asyncio.wait_for(work(), self.job_timeout_s)
        except asyncio.TimeoutError:
            return {"status": "timeout"}
        except FormatError as exc:
            return {"status": "failed", "message": str(exc)}
        except Exception:
            log.exception("symbolication job failed")
            return {"status": "internal_error"}
        return {"status": "completed", **payload}

    def _finished(self, job: Job, task: asyncio.Task[dict[str, Any]]) -> None:
        self._running -= 1
        job.finished_at = time.monotonic()
        job.result = {"status": "internal_error"} if task.cancelled() else task.result()

    def _expire(self) -> None:
        now = time.monotonic()
        for job_id in [j.id for j in self._jobs.values() if j.finished_at and now - j.finished_at > KEEP_FINISHED_S]:
            del self._jobs[job_id]

    def get(self, job_id: str, scope: Scope) -> Job:
        self._expire()
        job = self._jobs.get(job_id)
        if job is None or job.scope != scope:
            raise NotFound("unknown request id; submit the request again")
        return job

    async def wait(self, job: Job, timeout: float | None) -> dict[str, Any]:
        """The job's envelope once done, or `pending` after `timeout` seconds."""
        if not job.task.done():
            try:
                await asyncio.wait_for(asyncio.shield(job.task), timeout)
            except asyncio.TimeoutError:
                return {"status": "pending", "request_id": job.id, "retry_after": RETRY_AFTER_S}
        if job.finished_at is None:
            await asyncio.sleep(0)
        return job.result or job.task.result()

    def cancel_all(self) -> None:
        for job in self._jobs.values():
            job.task.cancel()
