"""`create_app(settings)`: the whole service as one aiohttp application.

Resources (storage, caches, the upload service, the worker pool, the fetcher) are
opened in a cleanup context, so tests and `serve` start and stop the same way. Two
apps in one process share none of those; they do share the per-process memos of
opened converted files and parsed manifests (`service/native_modules.py`,
`service/js_lookup.py`, `service/minidump_cfi.py`), which are keyed by content and
so safe to share, and which a `Services` composition root is meant to own (issue 12).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from symbolicator.artifacts.indexes import IndexReader
from symbolicator.caching import Caches, Coalescer
from symbolicator.caching.shared import open_shared
from symbolicator.config import Settings, jobs_per_scope
from symbolicator.fetch import Fetcher
from symbolicator.metrics import Metrics, cache_gauges
from symbolicator.service.jobs import JobRegistry
from symbolicator.service.uploads import UploadService
from symbolicator.service.workers import WorkerPool
from symbolicator.storage.configured import open_storage
from symbolicator.storage.local import process_alive
from symbolicator.web import (
    health,
    minidump,
    requests,
    symbolicate,
    symbolicate_any,
    symbolicate_js,
    symbolicate_jvm,
    uploads,
)
from symbolicator.web.auth import Authenticator
from symbolicator.web.errors import Handler, error_middleware
from symbolicator.web.server import body_deadline_middleware
from symbolicator.web.state import (
    AUTH,
    CACHES,
    COALESCER,
    FETCHER,
    INDEXES,
    JOBS,
    METRICS,
    SETTINGS,
    STORAGE,
    UPLOADS,
    WORKERS,
)


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    route = request.match_info.route.resource
    name = route.canonical if route is not None else "unmatched"
    response = await handler(request)
    metrics = request.app[METRICS]
    metrics.requests.labels(name, request.method, str(response.status)).inc()
    metrics.latency.labels(name).observe(time.perf_counter() - started)
    metrics.process_requests.inc()
    return response


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    storage = open_storage(settings.storage)
    app[STORAGE] = storage
    app[INDEXES] = IndexReader(storage)
    c, s3 = settings.cache, settings.storage.s3
    shared = open_shared(c.shared, c.shared_endpoint_url or s3.endpoint_url, c.shared_region or s3.region,
                         app[METRICS].shared_cache_event)
    caches = Caches.open(c.dir, c.downloads_max_bytes, c.derived_max_bytes, shared)
    app[CACHES] = caches
    app[METRICS].add_collector(lambda: cache_gauges(caches))
    work_dir = own_work_dir(settings.cache.dir / "tmp" / "assemble")
    app[UPLOADS] = UploadService(settings, storage, app[METRICS], work_dir)
    app[WORKERS] = WorkerPool(settings.workers, settings.limits.worker_max_memory_bytes)
    warming = asyncio.ensure_future(app[WORKERS].warm())
    app[FETCHER] = Fetcher(settings.fetch, allowed_hosts=settings.fetch.allowed_hosts,
                           allowed_networks=settings.fetch.allowed_networks)
    yield
    warming.cancel()
    await app[FETCHER].close()
    app[JOBS].cancel_all()
    app[UPLOADS].close()
    if shared is not None:
        await shared.close()
    app[WORKERS].close()
    caches.close()


def own_work_dir(root: Path) -> Path:
    """`root/<pid>`: processes sharing the cache folder (`serve --processes`) each empty their own
    at start, never another's files in flight; folders of processes gone are removed."""
    if root.is_dir():
        for old in root.iterdir():
            if old.name.isdigit() and not process_alive(int(old.name)):
                shutil.rmtree(old, ignore_errors=True)
    return root / str(os.getpid())


def create_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[body_deadline_middleware, metrics_middleware, error_middleware],
        client_max_size=settings.limits.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[AUTH] = Authenticator(settings)
    app[JOBS] = JobRegistry(settings.limits.max_concurrent_jobs, settings.limits.job_timeout_s,
                            jobs_per_scope(settings.limits))
    app[COALESCER] = Coalescer()
    app.cleanup_ctx.append(_resources)
    app.add_routes(health.routes)
    app.add_routes(uploads.routes)
    app.add_routes(requests.routes)
    app.add_routes(symbolicate.routes)
    app.add_routes(symbolicate_js.routes)
    app.add_routes(symbolicate_jvm.routes)
    app.add_routes(symbolicate_any.routes)
    app.add_routes(minidump.routes)
    return app
