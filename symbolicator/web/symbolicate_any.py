"""`POST /symbolicate-any`: one event with JS and native frames (React Native), answered merged;
or, in Symbolicator's own form, a stored minidump or Apple crash report named by `storage_url`.

The body is validated and split before the job starts (service/js/mixed.py, or
service/stored_attachments.py when it has a `symbolicate` object: 400/413/422 at once); the job
(`Services.symbolicate_any`, or `NativeService.symbolicate_stored`, which fetches the attachment
and processes it as `/minidump` / `/applecrashreport` would) answers through `run_job`
(Symbolicator's envelope, `?timeout`, polling), like `/symbolicate` and `/symbolicate-js`.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from symbolicator.service.js.mixed import MixedRequest
from symbolicator.service.native import NativeRequest
from symbolicator.service.stored_attachments import StoredAttachment
from symbolicator.web.bodies import read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import AUTH, SERVICES

routes = web.RouteTableDef()


def _request_model(body: Any) -> MixedRequest | StoredAttachment:
    if isinstance(body, dict) and "symbolicate" in body and "stacktraces" not in body:
        return StoredAttachment.from_json(body)
    return MixedRequest.from_json(body)


@routes.post("/symbolicate-any")
async def symbolicate_any(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    model = await read_request(request, _request_model)  # the caps, and large bodies off the loop
    services = request.app[SERVICES]
    if isinstance(model, StoredAttachment):
        stored = model
        req = NativeRequest.from_json({"stacktraces": [], **stored.fields})  # 422 for a wrong shape
        plan = services.native.sources(req.sources)
        return await run_job(request, scope, lambda: services.native.symbolicate_stored(stored, scope, plan))
    mixed = model
    sources = services.native.sources(mixed.native.sources)
    return await run_job(request, scope, lambda: services.symbolicate_any(mixed, scope, sources))
