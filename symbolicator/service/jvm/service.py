"""JVM symbolication as the running service offers it: one object per service, built by `Services`.

It holds the `JvmDeps` every `/symbolicate-jvm` request shares (storage, the index reader, the
caches, the coalescer, the worker pool and the conversion counter); each request gets its own
`MappingLookup` over them, scoped to its tenant.
"""

from __future__ import annotations

import asyncio
from typing import Any

from symbolicator.config import LimitsSettings
from symbolicator.metrics import Metrics
from symbolicator.service.jvm.lookup import JvmDeps, MappingLookup
from symbolicator.service.jvm.request import JvmRequest, symbolicate
from symbolicator.service.jvm.sources import JvmSources
from symbolicator.service.parts import ServiceParts
from symbolicator.types import Scope


class JvmService:
    """`/symbolicate-jvm`: ProGuard mappings found by UUID, converted once, remapping off the loop."""

    def __init__(self, parts: ServiceParts, metrics: Metrics) -> None:
        self.limits: LimitsSettings = parts.settings.limits
        self.deps = JvmDeps(parts.storage, parts.index_reader, parts.caches, parts.coalescer, parts.workers,
                            metrics.jvm_conversions)

    async def symbolicate(self, req: JvmRequest, scope: Scope) -> dict[str, Any]:
        """The completed payload of a `/symbolicate-jvm` request."""
        lookup = MappingLookup(self.deps, scope)
        remappers, errors = await lookup.open_all([m.uuid for m in req.modules if m.type == "proguard"])
        bundles = await lookup.source_bundles([m.uuid for m in req.modules if m.type == "source"]) \
            if req.apply_source_context else []
        limits = self.limits

        def answer() -> dict[str, Any]:  # CPU work and ZIP reads: off the loop
            sources = JvmSources(bundles, limits.max_bundle_entries, limits.max_bundle_uncompressed_bytes)
            try:
                return symbolicate(req, remappers, errors, sources.lines)
            finally:
                sources.close()

        return await asyncio.to_thread(answer)
