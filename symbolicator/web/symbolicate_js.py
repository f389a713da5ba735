"""`POST /symbolicate-js`: translate JSON to a JS job and back; `run_job` does `?timeout` and polling."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from symbolicator.service.js import JsRequest
from symbolicator.service.js.lookup import JsDeps, symbolicate_js
from symbolicator.web.bodies import read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import (
    AUTH,
    CACHES,
    COALESCER,
    FETCHER,
    INDEXES,
    METRICS,
    SETTINGS,
    STORAGE,
    WORKERS,
)

routes = web.RouteTableDef()


def js_deps(app: web.Application) -> JsDeps:
    """What the JS service needs from the app (also the JS half of `/symbolicate-any`)."""
    return JsDeps(app[SETTINGS], app[STORAGE], app[INDEXES], app[CACHES], app[COALESCER], app[WORKERS],
                  app[FETCHER], app[METRICS].js_conversions)


@routes.post("/symbolicate-js")
async def symbolicate_js_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    js_request = await read_request(request, JsRequest.from_json)
    deps = js_deps(app)

    async def work() -> dict[str, Any]:
        return await symbolicate_js(js_request, deps, scope)

    return await run_job(request, scope, work)
