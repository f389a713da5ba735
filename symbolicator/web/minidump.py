"""`POST /minidump`: a multipart minidump upload in, Symbolicator's native answer out.

Fields as Symbolicator takes them: `upload_file_minidump` (the dump), `sources`, `options`,
`scraping`, `platform`, `rewrite_first_module` (JSON strings, each at most 1 MiB; unknown fields
ignored); `?scope=` and `?timeout=` / polling as every endpoint. The dump is streamed into the
cache's temp folder and its header and directory are read (in the worker pool) before the job
starts, so a body that is no minidump answers 400 at once; the walk and the symbolication are the job's.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from symbolicator.service.native import NativeRequest
from symbolicator.service.rewrite_rules import RewriteRules
from symbolicator.web.jobs import request_scope, run_job
from symbolicator.web.state import AUTH, SERVICES
from symbolicator.web.symbolicate import read_form

routes = web.RouteTableDef()
DUMP_FIELD = "upload_file_minidump"
REWRITE_FIELD = "rewrite_first_module"


@routes.post("/minidump")
async def minidump_endpoint(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    dump, fields = await read_form(request, DUMP_FIELD, (REWRITE_FIELD,))
    request_fields: dict[str, Any] = {k: fields[k] for k in ("sources", "options") if k in fields}
    req = NativeRequest.from_json({"stacktraces": [], **request_fields})  # 422 for a wrong shape
    rewrite = RewriteRules.from_json(fields.get(REWRITE_FIELD))  # 422 too
    native = request.app[SERVICES].native
    sources = native.sources(req.sources)
    path: Path = await asyncio.to_thread(native.caches.downloads.temp_path, ".dmp")
    await asyncio.to_thread(path.write_bytes, dump)
    del dump
    try:
        facts = await native.read_minidump(path)
    except BaseException:
        path.unlink(missing_ok=True)
        raise

    started = False

    async def work() -> dict[str, Any]:
        nonlocal started
        started = True
        try:
            return await native.symbolicate_minidump(path, facts, request_fields, scope, sources, rewrite)
        finally:
            await asyncio.to_thread(path.unlink, True)

    try:
        return await run_job(request, scope, work)
    except Exception:
        if not started:
            path.unlink(missing_ok=True)  # refused before the job ran (503): nothing left behind
        raise
