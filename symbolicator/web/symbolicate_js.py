"""`POST /symbolicate-js`: translate JSON to a JS job and back; `run_job` does `?timeout` and polling."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from symbolicator.errors import BadRequest
from symbolicator.service.js import JsRequest
from symbolicator.service.js_lookup import JsDeps, symbolicate_js
from symbolicator.web.requests import request_scope, run_job
from symbolicator.web.state import AUTH, CACHES, COALESCER, FETCHER, SETTINGS, STORAGE, WORKERS

routes = web.RouteTableDef()
_PARSE_IN_THREAD_BYTES = 1024 * 1024


@routes.post("/symbolicate-js")
async def symbolicate_js_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    raw = await request.read()
    try:
        body = await asyncio.to_thread(orjson.loads, raw) if len(raw) > _PARSE_IN_THREAD_BYTES else orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    js_request = JsRequest.from_json(body)
    deps = JsDeps(app[SETTINGS], app[STORAGE], app[CACHES], app[COALESCER], app[WORKERS], app[FETCHER])

    async def work() -> dict[str, Any]:
        return await symbolicate_js(js_request, deps, scope)

    return await run_job(request, scope, work)
