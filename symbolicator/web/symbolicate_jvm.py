"""`POST /symbolicate-jvm`: translate JSON to a JVM job and back; `run_job` does `?timeout` and polling."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from symbolicator.service.jvm import JvmRequest, symbolicate
from symbolicator.service.jvm_lookup import JvmDeps, MappingLookup
from symbolicator.service.jvm_sources import JvmSources
from symbolicator.web.bodies import read_request
from symbolicator.web.requests import request_scope, run_job
from symbolicator.web.state import AUTH, CACHES, COALESCER, INDEXES, METRICS, SETTINGS, STORAGE, WORKERS

routes = web.RouteTableDef()


@routes.post("/symbolicate-jvm")
async def symbolicate_jvm_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    jvm_request = await read_request(request, JvmRequest.from_json)
    deps = JvmDeps(app[STORAGE], app[INDEXES], app[CACHES], app[COALESCER], app[WORKERS], app[METRICS].jvm_conversions)
    lookup = MappingLookup(deps, scope)

    limits = app[SETTINGS].limits

    async def work() -> dict[str, Any]:
        remappers, errors = await lookup.open_all([m.uuid for m in jvm_request.modules if m.type == "proguard"])
        bundles = await lookup.source_bundles([m.uuid for m in jvm_request.modules if m.type == "source"]) \
            if jvm_request.apply_source_context else []

        def answer() -> dict[str, Any]:  # CPU work and ZIP reads: off the loop
            sources = JvmSources(bundles, limits.max_bundle_entries, limits.max_bundle_uncompressed_bytes)
            try:
                return symbolicate(jvm_request, remappers, errors, sources.lines)
            finally:
                sources.close()

        return await asyncio.to_thread(answer)

    return await run_job(request, scope, work)
