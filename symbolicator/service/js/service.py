"""JavaScript symbolication as the running service offers it: one object per service, built by `Services`.

It holds the `JsDeps` every request shares (storage, caches, coalescer, worker pool, fetcher)
and with them the memos (`JsMemos`: opened sourcemap caches, minified line indexes, bundle
manifests) that make a warm request cheap; before, these were module-level LRUs shared by
every app in the process. Each request gets its own `JsLookup` over them.
"""

from __future__ import annotations

from typing import Any

from symbolicator.artifacts.indexes import IndexReader
from symbolicator.caching import Caches, Coalescer
from symbolicator.config import Settings
from symbolicator.fetch import Fetcher
from symbolicator.metrics import Metrics
from symbolicator.service.js.lookup import JsDeps, JsMemos, symbolicate_js
from symbolicator.service.js.request import JsRequest
from symbolicator.service.workers import WorkerPool
from symbolicator.storage.base import Storage
from symbolicator.types import Scope


class JsService:
    """`/symbolicate-js` and the JS half of `/symbolicate-any`."""

    def __init__(self, settings: Settings, storage: Storage, indexes: IndexReader, caches: Caches,
                 coalescer: Coalescer, workers: WorkerPool, metrics: Metrics, fetcher: Fetcher | None) -> None:
        self.deps = JsDeps(settings, storage, indexes, caches, coalescer, workers, fetcher, metrics.js_conversions,
                           JsMemos())

    async def symbolicate(self, req: JsRequest, scope: Scope) -> dict[str, Any]:
        """The completed payload of a `/symbolicate-js` request."""
        return await symbolicate_js(req, self.deps, scope)
