"""`POST /symbolicate-jvm`: translate JSON to a JVM job and back; `run_job` does `?timeout` and polling."""

from __future__ import annotations

from aiohttp import web

from symbolicator.service.jvm import JvmRequest
from symbolicator.web.bodies import read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import AUTH, SERVICES

routes = web.RouteTableDef()


@routes.post("/symbolicate-jvm")
async def symbolicate_jvm_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    jvm_request = await read_request(request, JvmRequest.from_json)
    jvm = request.app[SERVICES].jvm
    return await run_job(request, scope, lambda: jvm.symbolicate(jvm_request, scope))
