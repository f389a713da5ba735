"""`POST /symbolicate-any`: one event with JS and native frames (React Native), answered merged.

The body is validated and split before the job starts (service/js/mixed.py: 400/413/422 at once);
the job runs the JS engine and the native engine concurrently and answers through `run_job`
(Symbolicator's envelope, `?timeout`, polling), like `/symbolicate` and `/symbolicate-js`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from symbolicator.service import native
from symbolicator.service.js import JsRequest
from symbolicator.service.js.lookup import symbolicate_js
from symbolicator.service.js.mixed import MixedRequest, symbolicate_mixed
from symbolicator.web.bodies import read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import (
    AUTH,
)
from symbolicator.web.symbolicate import module_resolver
from symbolicator.web.symbolicate_js import js_deps

routes = web.RouteTableDef()


@routes.post("/symbolicate-any")
async def symbolicate_any(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    mixed = await read_request(request, MixedRequest.from_json)  # the caps, and large bodies off the loop
    resolve = module_resolver(request, scope, mixed.native)
    deps = js_deps(app)

    async def run_js(js: JsRequest) -> dict[str, Any]:
        return await symbolicate_js(js, deps, scope)

    async def run_native(req: native.NativeRequest) -> dict[str, Any]:
        return await native.symbolicate(req, resolve)

    return await run_job(request, scope, lambda: symbolicate_mixed(mixed, run_js, run_native))
