"""`POST /minidump`: a multipart minidump upload in, Symbolicator's native answer out.

Fields as Symbolicator takes them: `upload_file_minidump` (the dump), `sources`, `options`,
`scraping`, `platform` (JSON strings, each at most 1 MiB; unknown fields ignored); `?scope=`
and `?timeout=` / polling as every endpoint. The dump is streamed into the cache's temp folder
and its header and directory are read (in the worker pool) before the job starts, so a body
that is no minidump answers 400 at once; the walk and the symbolication are the job's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from symbolicator.errors import BadRequest
from symbolicator.service import minidump, native
from symbolicator.service.minidump_cfi import CfiLookup, ResolvedUnwind
from symbolicator.service.native.modules import RequestSources
from symbolicator.types import Scope
from symbolicator.web.bodies import loads
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
from symbolicator.web.symbolicate import (
    JSON_FIELDS,
    MAX_FIELD_BYTES,
    module_resolver,
)

routes = web.RouteTableDef()
DUMP_FIELD = "upload_file_minidump"


async def _read_upload(request: web.Request) -> tuple[bytes, dict[str, Any]]:
    reader = await open_form(request, f"an `{DUMP_FIELD}` part")
    limits = request.app[SETTINGS].limits
    dump: bytes | None = None
    fields: dict[str, Any] = {}
    while (part := await next_part(reader)) is not None:
        if part.name == DUMP_FIELD:
            dump = await read_part(part, limits.max_body_bytes, "limits.max_body_bytes")
        elif part.name in JSON_FIELDS:
            raw = await read_part(part, MAX_FIELD_BYTES, "the limit of a JSON field")
            fields[part.name] = loads(raw, limits.max_json_depth, f"field `{part.name}`")
    if dump is None:
        raise BadRequest(f"no `{DUMP_FIELD}` part in the request")
    return dump, fields


def _unwind_resolver(request: web.Request, scope: Scope,
                     sources: list[dict[str, Any]] | None) -> minidump.ResolveUnwind:
    app = request.app
    lookup = CfiLookup(app[SETTINGS], app[STORAGE], app[INDEXES], app[CACHES], app[COALESCER], app[WORKERS],
                       app[METRICS], app.get(FETCHER))
    plan = RequestSources.from_request(app[SETTINGS], sources)

    async def resolve(module: native.RawModule) -> ResolvedUnwind:
        found = await lookup.resolve(scope, module.debug_id, module.code_id, module.type,
                                     module.fields.get("code_file"), module.fields.get("debug_file"), plan)
        assert isinstance(found, ResolvedUnwind)
        return found

    return resolve


@routes.post("/minidump")
async def minidump_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    dump, fields = await _read_upload(request)
    request_fields: dict[str, Any] = {k: fields[k] for k in ("sources", "options") if k in fields}
    req = native.NativeRequest.from_json({"stacktraces": [], **request_fields})  # 422 for a wrong shape
    workers = request.app[WORKERS]
    path: Path = await asyncio.to_thread(request.app[CACHES].downloads.temp_path, ".dmp")
    await asyncio.to_thread(path.write_bytes, dump)
    del dump
    try:
        facts = await minidump.read_facts(path, workers.run)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    resolve = module_resolver(request, scope, req)
    resolve_unwind = _unwind_resolver(request, scope, req.sources)

    started = False

    async def work() -> dict[str, Any]:
        nonlocal started
        started = True
        try:
            return await minidump.symbolicate_minidump(path, facts, request_fields, workers.run, resolve,
                                                       resolve_unwind)
        finally:
            await asyncio.to_thread(path.unlink, True)

    try:
        return await run_job(request, scope, work)
    except Exception:
        if not started:
            path.unlink(missing_ok=True)  # refused before the job ran (503): nothing left behind
        raise
