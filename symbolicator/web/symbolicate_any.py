"""`POST /symbolicate-any`: one event with JS and native frames (React Native), answered merged.

The body is validated and split before the job starts (service/js_mixed.py: 400/413/422 at once);
the job runs the JS engine and the native engine concurrently and answers through `run_job`
(Symbolicator's envelope, `?timeout`, polling), like `/symbolicate` and `/symbolicate-js`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from symbolicator.service import native
from symbolicator.service.js import JsRequest
from symbolicator.service.js_lookup import JsDeps, symbolicate_js
from symbolicator.service.js_mixed import MixedRequest, symbolicate_mixed
from symbolicator.web.bodies import check_frame_count, read_json
from symbolicator.web.requests import request_scope, run_job
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
from symbolicator.web.symbolicate import module_resolver

routes = web.RouteTableDef()


@routes.post("/symbolicate-any")
async def symbolicate_any(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    body = await read_json(request)
    check_frame_count(body, app[SETTINGS].limits.max_frames_per_request)
    mixed = MixedRequest.from_json(body)
    resolve = module_resolver(request, scope, mixed.native)
    deps = JsDeps(app[SETTINGS], app[STORAGE], app[INDEXES], app[CACHES], app[COALESCER], app[WORKERS],
                  app[FETCHER], app[METRICS].js_conversions)

    async def run_js(js: JsRequest) -> dict[str, Any]:
        return await symbolicate_js(js, deps, scope)

    async def run_native(req: native.NativeRequest) -> dict[str, Any]:
        return await native.symbolicate(req, resolve)

    return await run_job(request, scope, lambda: symbolicate_mixed(mixed, run_js, run_native))
