"""`POST /symbolicate-any`: one event with JS and native frames (React Native), answered merged.

The body is validated and split before the job starts (service/js/mixed.py: 400/413/422 at once);
the job (`Services.symbolicate_any`) runs the JS and the native service concurrently and answers
through `run_job` (Symbolicator's envelope, `?timeout`, polling), like `/symbolicate` and
`/symbolicate-js`.
"""

from __future__ import annotations

from aiohttp import web

from symbolicator.service.js.mixed import MixedRequest
from symbolicator.web.bodies import read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import AUTH, SERVICES

routes = web.RouteTableDef()


@routes.post("/symbolicate-any")
async def symbolicate_any(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    mixed = await read_request(request, MixedRequest.from_json)  # the caps, and large bodies off the loop
    services = request.app[SERVICES]
    sources = services.native.sources(mixed.native.sources)
    return await run_job(request, scope, lambda: services.symbolicate_any(mixed, scope, sources))
