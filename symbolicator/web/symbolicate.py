"""`POST /symbolicate` and `POST /applecrashreport`: translate HTTP to a native job and back.

The body is parsed before the job starts, so a bad one answers 400 (not JSON,
nested too deep, bad multipart, not a crash report), 413 (too many frames) or
422 (JSON of the wrong shape, request sources of the wrong shape) at once; everything
after that is the job's (`services.native`), answered through `run_job` with
Symbolicator's envelope and `?timeout` / polling.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from symbolicator.errors import BadRequest
from symbolicator.service.native import NativeRequest
from symbolicator.web.bodies import loads, read_request
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.multipart import next_part, open_form, read_part
from symbolicator.web.state import AUTH, SERVICES, SETTINGS

routes = web.RouteTableDef()

MAX_FIELD_BYTES = 1 << 20
JSON_FIELDS = ("sources", "options", "platform", "scraping")


@routes.post("/symbolicate")
async def symbolicate(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    req = await read_request(request, NativeRequest.from_json)
    native = request.app[SERVICES].native
    sources = native.sources(req.sources)
    return await run_job(request, scope, lambda: native.symbolicate(req, scope, sources))


@routes.post("/applecrashreport")
async def apple_crash_report(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    report, fields = await read_form(request, "apple_crash_report")
    native = request.app[SERVICES].native
    crash = await native.read_apple_crash(report, fields)
    sources = native.sources(crash.request.sources)
    return await run_job(request, scope, lambda: native.symbolicate_apple_crash(crash, scope, sources))


async def read_form(request: web.Request, file_field: str,
                    extra_fields: tuple[str, ...] = ()) -> tuple[bytes, dict[str, Any]]:
    """A multipart body: the `file_field` part's bytes (up to `limits.max_body_bytes`) and the
    JSON fields beside it (`JSON_FIELDS` and `extra_fields`, each up to 1 MiB; unknown parts
    ignored). 400 without the file part."""
    reader = await open_form(request, f"an `{file_field}` part")
    limits = request.app[SETTINGS].limits
    data: bytes | None = None
    fields: dict[str, Any] = {}
    while (part := await next_part(reader)) is not None:
        if part.name == file_field:
            data = await read_part(part, limits.max_body_bytes, "limits.max_body_bytes")
        elif part.name in JSON_FIELDS or part.name in extra_fields:
            raw = await read_part(part, MAX_FIELD_BYTES, "the limit of a JSON field")
            fields[part.name] = loads(raw, limits.max_json_depth, f"field `{part.name}`")
    if data is None:
        raise BadRequest(f"no `{file_field}` part in the request")
    return data, fields
