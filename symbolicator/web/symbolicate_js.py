"""`POST /symbolicate-js`: translate JSON to a JS job (`services.js`) and back; `run_job` does `?timeout`, polling."""

from __future__ import annotations

from aiohttp import web

from symbolicator.service.js import JsRequest
from symbolicator.web.bodies import read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import AUTH, SERVICES

routes = web.RouteTableDef()


@routes.post("/symbolicate-js")
async def symbolicate_js_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    js_request = await read_request(request, JsRequest.from_json)
    js = request.app[SERVICES].js
    return await run_job(request, scope, lambda: js.symbolicate(js_request, scope))
