"""`POST /symbolicate-jvm`: translate JSON to a JVM job and back; `run_job` does `?timeout` and polling."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from symbolicator.service.jvm import JvmRequest, symbolicate
from symbolicator.service.jvm_lookup import JvmDeps, MappingLookup
from symbolicator.web.bodies import read_request
from symbolicator.web.requests import request_scope, run_job
from symbolicator.web.state import AUTH, CACHES, COALESCER, INDEXES, METRICS, STORAGE, WORKERS

routes = web.RouteTableDef()


@routes.post("/symbolicate-jvm")
async def symbolicate_jvm_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    jvm_request = await read_request(request, JvmRequest.from_json)
    deps = JvmDeps(app[STORAGE], app[INDEXES], app[CACHES], app[COALESCER], app[WORKERS], app[METRICS].jvm_conversions)
    lookup = MappingLookup(deps, scope)

    async def work() -> dict[str, Any]:
        uuids = [m.uuid for m in jvm_request.modules if m.type == "proguard"]
        remappers, errors = await lookup.open_all(uuids)
        return await asyncio.to_thread(symbolicate, jvm_request, remappers, errors)  # CPU work: off the loop

    return await run_job(request, scope, work)
