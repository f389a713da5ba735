"""`create_app(settings)`: the whole service as one aiohttp application.

Everything that lives as long as the service (storage, caches, the worker pool, the upload
service, the fetcher, the job registry, the native and JS services with their memos) is one
`Services` (`service/services.py`), opened in the app's one cleanup context and closed there,
so tests and `serve` start and stop the same way. Two apps in one process share nothing.
"""

from __future__ import annotations

import functools
import time
from collections.abc import AsyncIterator

from aiohttp import web

from symbolicator.config import Settings
from symbolicator.metrics import Metrics
from symbolicator.service.services import Services, StorageFactory
from symbolicator.storage.configured import open_storage
from symbolicator.web import (
    health,
    jobs,
    minidump,
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
    METRICS,
    SERVICES,
    SETTINGS,
    STORAGE,
    UPLOADS,
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


async def _services(app: web.Application, storage_factory: StorageFactory) -> AsyncIterator[None]:
    """Open the service's parts at start-up and close them at shutdown, also when start-up fails."""
    async with Services.open(app[SETTINGS], app[METRICS], storage_factory=storage_factory) as services:
        app[SERVICES] = services
        app[STORAGE], app[CACHES], app[UPLOADS] = services.storage, services.caches, services.uploads
        yield


def create_app(settings: Settings, *, storage_factory: StorageFactory = open_storage) -> web.Application:
    """The service; `storage_factory` opens its storage (tests wrap the real one: tests/support/slow_storage.py)."""
    app = web.Application(
        middlewares=[body_deadline_middleware, metrics_middleware, error_middleware],
        client_max_size=settings.limits.max_body_bytes,
    )
    app[SETTINGS] = settings
    app[METRICS] = Metrics()
    app[AUTH] = Authenticator(settings)
    app.cleanup_ctx.append(functools.partial(_services, storage_factory=storage_factory))
    app.add_routes(health.routes)
    app.add_routes(uploads.routes)
    app.add_routes(jobs.routes)
    app.add_routes(symbolicate.routes)
    app.add_routes(symbolicate_js.routes)
    app.add_routes(symbolicate_jvm.routes)
    app.add_routes(symbolicate_any.routes)
    app.add_routes(minidump.routes)
    return app
