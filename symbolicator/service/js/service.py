"""JavaScript symbolication as the running service offers it: one object per service, built by `Services`.

It holds the `JsDeps` every request shares (storage, caches, coalescer, worker pool, fetcher)
and with them the memos (`JsMemos`: opened sourcemap caches, minified line indexes, bundle
manifests) that make a warm request cheap; before, these were module-level LRUs shared by
every app in the process. Each request gets its own `JsLookup` over them.
"""

from __future__ import annotations

from typing import Any

from symbolicator.metrics import Metrics
from symbolicator.service.js.lookup import JsDeps, JsMemos, symbolicate_js
from symbolicator.service.js.request import JsRequest
from symbolicator.service.parts import ServiceParts
from symbolicator.types import Scope


class JsService:
    """`/symbolicate-js` and the JS half of `/symbolicate-any`."""

    def __init__(self, parts: ServiceParts, metrics: Metrics) -> None:
        self.deps = JsDeps(**parts.shared(), conversions=metrics.js_conversions, memos=JsMemos())

    async def symbolicate(self, req: JsRequest, scope: Scope) -> dict[str, Any]:
        """The completed payload of a `/symbolicate-js` request."""
        return await symbolicate_js(req, self.deps, scope)
