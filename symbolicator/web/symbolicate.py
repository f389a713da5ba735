"""`POST /symbolicate` and `POST /applecrashreport`: translate HTTP to a native job and back.

The body is parsed before the job starts, so a bad one answers 400 (not JSON,
nested too deep, bad multipart, not a crash report), 413 (too many frames) or
422 (JSON of the wrong shape) at once; everything after that is the job's,
answered through `run_job` with Symbolicator's envelope and `?timeout` / polling.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from symbolicator.errors import BadRequest
from symbolicator.native.apple_crash import (
    parse_apple_crash_report,
    response_fields,
    to_symbolicate_request,
)
from symbolicator.service import native
from symbolicator.service.native.modules import (
    ModuleResolver,
    RequestSources,
    ResolvedModule,
)
from symbolicator.types import Scope
from symbolicator.web.bodies import check_counts, loads, read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.multipart import next_part, open_form, read_part
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

MAX_FIELD_BYTES = 1 << 20
JSON_FIELDS = ("sources", "options", "platform", "scraping")


def module_resolver(request: web.Request, scope: Scope, req: native.NativeRequest) -> native.Resolve:
    """Module lookup for this request; request `sources` of the wrong shape raise InvalidShape here."""
    app = request.app
    lookup = ModuleResolver(app[SETTINGS], app[STORAGE], app[INDEXES], app[CACHES], app[COALESCER], app[WORKERS],
                          app[METRICS], app.get(FETCHER))
    sources = RequestSources.from_request(app[SETTINGS], req.sources)

    async def resolve(module: native.RawModule) -> ResolvedModule:
        return await lookup.resolve(scope, module.debug_id, module.code_id, module.type,
                                    module.fields.get("code_file"), module.fields.get("debug_file"), sources)

    return resolve


@routes.post("/symbolicate")
async def symbolicate(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    req = await read_request(request, native.NativeRequest.from_json)
    resolve = module_resolver(request, scope, req)
    return await run_job(request, scope, lambda: native.symbolicate(req, resolve))


@routes.post("/applecrashreport")
async def apple_crash_report(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    reader = await open_form(request, "an `apple_crash_report` part")
    limits = request.app[SETTINGS].limits
    report_bytes: bytes | None = None
    fields: dict[str, Any] = {}
    while (part := await next_part(reader)) is not None:
        if part.name == "apple_crash_report":
            report_bytes = await read_part(part, limits.max_body_bytes, "limits.max_body_bytes")
        elif part.name in JSON_FIELDS:
            raw = await read_part(part, MAX_FIELD_BYTES, "the limit of a JSON field")
            fields[part.name] = loads(raw, limits.max_json_depth, f"field `{part.name}`")
    if report_bytes is None:
        raise BadRequest("no `apple_crash_report` part in the request")
    report = await asyncio.to_thread(parse_apple_crash_report, report_bytes)
    platform = fields.get("platform")
    body = to_symbolicate_request(report, platform=platform if isinstance(platform, str) else None)
    check_counts(body, limits)
    for name in ("sources", "options"):
        if name in fields:
            body[name] = fields[name]
    req = native.NativeRequest.from_json(body)
    resolve = module_resolver(request, scope, req)
    extra = response_fields(report)

    async def work() -> dict[str, Any]:
        payload = await native.symbolicate(req, resolve)
        return {**extra, **payload}

    return await run_job(request, scope, work)
