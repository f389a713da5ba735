"""The composition root: everything a running service holds, opened once, closed once.

`Services.open(settings)` builds, in dependency order, the storage and its index reader, the
caches (with the shared cache), the worker pool (warmed in the background), the upload service,
the outbound fetcher, the job registry and the coalescer, then the long-lived native and JS
services, which own the memos that make warm requests cheap (opened symcaches and CFI caches;
opened sourcemap caches, line indexes and bundle manifests). Leaving the context closes all of
it in reverse order, also when opening failed half-way or the body raised: the warm-up task is
cancelled and awaited, running jobs are cancelled and awaited, pools are shut down.

The web app opens one in its `cleanup_ctx` (`web/app.py`); tests open one in-process
(`tests/support/services.py`). Two `Services` share nothing, so two apps in one process (or a
test beside a running service) cannot see each other's memos.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from symbolicator.artifacts.indexes import IndexReader
from symbolicator.caching import Caches, Coalescer
from symbolicator.caching.shared import SharedCache
from symbolicator.config import Settings, StorageSettings, jobs_per_scope
from symbolicator.fetch import Fetcher
from symbolicator.metrics import Metrics, cache_gauges
from symbolicator.pids import process_alive
from symbolicator.service.jobs import JobRegistry
from symbolicator.service.js.mixed import MixedRequest, symbolicate_mixed
from symbolicator.service.js.service import JsService
from symbolicator.service.jvm.service import JvmService
from symbolicator.service.native.modules import RequestSources
from symbolicator.service.native.service import NativeService
from symbolicator.service.parts import ServiceParts
from symbolicator.service.uploads import UploadService
from symbolicator.service.workers import WorkerPool
from symbolicator.storage.base import Storage
from symbolicator.storage.configured import open_shared_storage, open_storage
from symbolicator.types import Scope

StorageFactory = Callable[[StorageSettings], Storage]


@dataclass(frozen=True)
class Services:
    """One running service's parts. Build it with `Services.open`, never directly."""

    settings: Settings
    metrics: Metrics
    storage: Storage
    indexes: IndexReader
    caches: Caches
    shared: SharedCache | None
    workers: WorkerPool
    uploads: UploadService
    fetcher: Fetcher
    jobs: JobRegistry
    coalescer: Coalescer
    native: NativeService
    js: JsService
    jvm: JvmService

    @classmethod
    @contextlib.asynccontextmanager
    async def open(cls, settings: Settings, metrics: Metrics | None = None, *,
                   storage_factory: StorageFactory = open_storage) -> AsyncIterator[Services]:
        """Open everything (blocking steps included: call it at start-up, not per request).
        `storage_factory` opens the storage (tests wrap the real one: tests/support/slow_storage.py)."""
        metrics = metrics if metrics is not None else Metrics()
        async with contextlib.AsyncExitStack() as stack:
            storage = storage_factory(settings.storage)
            indexes = IndexReader(storage)
            c, s3 = settings.cache, settings.storage.s3
            shared_store = open_shared_storage(c.shared, c.shared_endpoint_url or s3.endpoint_url,
                                               c.shared_region or s3.region)
            shared = SharedCache(shared_store, metrics.shared_cache_event) if shared_store is not None else None
            if shared is not None:
                stack.push_async_callback(shared.close)
            caches = Caches.open(c.dir, c.downloads_max_bytes, c.derived_max_bytes, shared)
            stack.callback(caches.close)
            metrics.add_collector(lambda: cache_gauges(caches))
            workers = WorkerPool(settings.workers, settings.limits.worker_max_memory_bytes)
            stack.callback(workers.close)
            stack.push_async_callback(_cancel_and_wait, asyncio.ensure_future(workers.warm()))
            uploads = UploadService(settings, storage, metrics, own_work_dir(c.dir / "tmp" / "assemble"))
            stack.callback(uploads.close)
            fetcher = Fetcher(settings.fetch, allowed_hosts=settings.fetch.allowed_hosts,
                              allowed_networks=settings.fetch.allowed_networks)
            stack.push_async_callback(fetcher.close)
            jobs = JobRegistry(settings.limits.max_concurrent_jobs, settings.limits.job_timeout_s,
                               jobs_per_scope(settings.limits))
            stack.push_async_callback(jobs.close)
            coalescer = Coalescer()
            parts = ServiceParts(settings, storage, indexes, caches, coalescer, workers, fetcher)
            yield cls(settings, metrics, storage, indexes, caches, shared, workers, uploads, fetcher, jobs, coalescer,
                      NativeService(parts, metrics), JsService(parts, metrics),
                      JvmService(parts, metrics))

    async def symbolicate_any(self, mixed: MixedRequest, scope: Scope,
                              sources: RequestSources | None = None) -> dict[str, Any]:
        """`/symbolicate-any`: the JS and the native frames of one event, concurrently, answered merged."""
        plan = sources if sources is not None else self.native.sources(mixed.native.sources)
        return await symbolicate_mixed(mixed, lambda js: self.js.symbolicate(js, scope),
                                       lambda req: self.native.symbolicate(req, scope, plan))


async def _cancel_and_wait(task: asyncio.Future[Any]) -> None:
    """Cancel a background task and wait until it has ended (it must not outlive what it uses)."""
    task.cancel()
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: it ended on its own, and how does not matter at shutdown


def own_work_dir(root: Path) -> Path:
    """`root/<pid>`: processes sharing the cache folder (`serve --processes`) each empty their own
    at start, never another's files in flight; folders of processes gone are removed."""
    if root.is_dir():
        for old in root.iterdir():
            if old.name.isdigit() and not process_alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
    return root / str(os.getpid())
