"""Running symbolication requests, for `?timeout=N` and `GET /requests/{id}` polling.

Symbolicator's model, which Sentry's ingest client relies on: every request is
a background job with a random id; the caller waits up to `timeout` seconds and
otherwise gets `pending` + `request_id` + `retry_after: 30`, then long-polls.
A finished result stays readable for 90 s; after that (or after a restart) the
id is unknown, and the client resubmits. Ids are random UUIDs bound to the
scope that created them: polling from another scope looks exactly like an
unknown id, so it reveals nothing.

Fairness: one scope runs at most `max_per_scope` of the `max_concurrent` jobs,
so a tenant whose requests hang on a slow website gets 503 for its own extra
requests while every other scope still finds free slots.

Only ids that were handed out can be polled, so only their results are kept:
a request answered within its own wait (the usual case) is forgotten as soon
as its answer is delivered. Under load that is the difference between holding
90 s of every response in memory (hundreds of MB at a few hundred JS events a
second) and holding only the few that went `pending`. Expiry walks the finished
ids oldest first, so a busy registry pays per expired id, not per id held.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from symbolicator.errors import FormatError, JobInputRejected, NotFound, Overloaded
from symbolicator.fetch_tenants import fetches_for
from symbolicator.types import Scope

log = logging.getLogger(__name__)

RETRY_AFTER_S = 30
KEEP_FINISHED_S = 90.0
CLOSE_WAIT_S = 5.0


@dataclass
class Job:
    id: str
    scope: Scope
    task: asyncio.Task[dict[str, Any]]
    finished_at: float | None = None
    result: dict[str, Any] = field(default_factory=dict)
    handed_out: bool = False


class JobRegistry:
    """`max_concurrent` jobs at once, of which one scope runs at most `max_per_scope`."""

    def __init__(self, max_concurrent: int, job_timeout_s: float, max_per_scope: int | None = None) -> None:
        self.max_concurrent = max_concurrent
        self.max_per_scope = max_concurrent if max_per_scope is None else max_per_scope
        self.job_timeout_s = job_timeout_s
        self._jobs: dict[str, Job] = {}
        self._done: collections.deque[tuple[float, str]] = collections.deque()  # (finished_at, id), oldest first
        self._running = 0
        self._running_by_scope: collections.Counter[Scope] = collections.Counter()

    @property
    def running(self) -> int:
        return self._running

    def submit(self, scope: Scope, work: Callable[[], Awaitable[dict[str, Any]]]) -> Job:
        """Start `work` as a job; Overloaded when too many are running already."""
        self._expire()
        if self._running >= self.max_concurrent:
            raise Overloaded(f"maximum number of concurrent requests reached ({self.max_concurrent})")
        if self._running_by_scope[scope] >= self.max_per_scope:
            raise Overloaded(f"scope {scope} already runs {self.max_per_scope} requests "
                             f"(limits.max_concurrent_jobs_per_scope); other scopes are still served")
        job_id = str(uuid.uuid4())
        self._running += 1
        self._running_by_scope[scope] += 1
        task = asyncio.ensure_future(self._run(work))
        job = Job(job_id, scope, task)
        self._jobs[job_id] = job
        task.add_done_callback(lambda t: self._finished(job, t))
        return job

    async def _run(self, work: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any]:
        try:
            async with asyncio.timeout(self.job_timeout_s):  # unlike wait_for, no second task per job
                payload = await work()
        except TimeoutError:
            return {"status": "timeout"}
        except (FormatError, JobInputRejected) as exc:
            return {"status": "failed", "message": str(exc)}
        except Exception:
            log.exception("symbolication job failed")
            return {"status": "internal_error"}
        return {"status": "completed", **payload}

    def _finished(self, job: Job, task: asyncio.Task[dict[str, Any]]) -> None:
        self._running -= 1
        self._running_by_scope[job.scope] -= 1
        if self._running_by_scope[job.scope] <= 0:
            del self._running_by_scope[job.scope]
        job.finished_at = time.monotonic()
        job.result = {"status": "internal_error"} if task.cancelled() else task.result()
        self._done.append((job.finished_at, job.id))

    def _expire(self) -> None:
        cutoff = time.monotonic() - KEEP_FINISHED_S
        done = self._done
        while done and done[0][0] < cutoff:
            self._jobs.pop(done.popleft()[1], None)

    def get(self, job_id: str, scope: Scope) -> Job:
        self._expire()
        job = self._jobs.get(job_id)
        if job is None or job.scope != scope:
            raise NotFound("unknown request id; submit the request again")
        return job

    async def run(self, scope: Scope, work: Callable[[], Awaitable[dict[str, Any]]], timeout: float | None,
                  max_fetches: int) -> dict[str, Any]:
        """Start `work` as the scope's job and answer its envelope within `timeout` (else `pending`).

        The job's task copies the context at submit, so its outbound fetches count against
        the scope and this request (`fetch_tenants`)."""
        with fetches_for(str(scope), max_fetches):
            job = self.submit(scope, work)
        return await self.wait(job, timeout)

    async def wait(self, job: Job, timeout: float | None) -> dict[str, Any]:
        """The job's envelope once done, or `pending` after `timeout` seconds."""
        if not job.task.done():
            try:
                async with asyncio.timeout(timeout):
                    await asyncio.shield(job.task)
            except TimeoutError:
                job.handed_out = True
                return {"status": "pending", "request_id": job.id, "retry_after": RETRY_AFTER_S}
        if job.finished_at is None:
            await asyncio.sleep(0)
        if not job.handed_out:
            self._jobs.pop(job.id, None)  # nobody was told its id, so nobody can poll it
        return job.result or job.task.result()

    async def close(self, wait_s: float = CLOSE_WAIT_S) -> None:
        """Cancel every job and wait (up to `wait_s`) until their tasks have ended."""
        tasks = [job.task for job in self._jobs.values() if not job.task.done()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=wait_s)
