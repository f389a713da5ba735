"""`POST /symbolicate-any`: one event with JS and native frames (React Native), answered merged;
or, in Symbolicator's own form, a stored minidump or Apple crash report named by `storage_url`.

The body is validated and split before the job starts (service/js_mixed.py, or
service/stored_attachments.py when it has a `symbolicate` object: 400/413/422 at once); the
job runs the JS engine and the native engine concurrently, or fetches the attachment and
processes it as `/minidump` / `/applecrashreport` would, and answers through `run_job`
(Symbolicator's envelope, `?timeout`, polling), like `/symbolicate` and `/symbolicate-js`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from aiohttp import web

from symbolicator.errors import AttachmentUnavailable, BadRequest, PayloadTooLarge
from symbolicator.native.apple_crash import parse_apple_crash_report, response_fields, to_symbolicate_request
from symbolicator.service import minidump, native
from symbolicator.service.js import JsRequest
from symbolicator.service.js_lookup import symbolicate_js
from symbolicator.service.js_mixed import MixedRequest, symbolicate_mixed
from symbolicator.service.stored_attachments import StoredAttachment, fetch_attachment
from symbolicator.types import Scope
from symbolicator.web.bodies import check_counts, read_request
from symbolicator.web.minidump import unwind_resolver
from symbolicator.web.requests import request_scope, run_job
from symbolicator.web.state import (
    AUTH,
    CACHES,
    FETCHER,
    SETTINGS,
    WORKERS,
)
from symbolicator.web.symbolicate import module_resolver
from symbolicator.web.symbolicate_js import js_deps

routes = web.RouteTableDef()


def _request_model(body: Any) -> MixedRequest | StoredAttachment:
    if isinstance(body, dict) and "symbolicate" in body and "stacktraces" not in body:
        return StoredAttachment.from_json(body)
    return MixedRequest.from_json(body)


@routes.post("/symbolicate-any")
async def symbolicate_any(request: web.Request) -> web.Response:
    scope = request_scope(request)
    app = request.app
    app[AUTH].require_symbolicate(request, scope)
    model = await read_request(request, _request_model)  # the caps, and large bodies off the loop
    if isinstance(model, StoredAttachment):
        return await _stored(request, scope, model)
    mixed = model
    resolve = module_resolver(request, scope, mixed.native)
    deps = js_deps(app)

    async def run_js(js: JsRequest) -> dict[str, Any]:
        return await symbolicate_js(js, deps, scope)

    async def run_native(req: native.NativeRequest) -> dict[str, Any]:
        return await native.symbolicate(req, resolve)

    return await run_job(request, scope, lambda: symbolicate_mixed(mixed, run_js, run_native))


async def _stored(request: web.Request, scope: Scope, stored: StoredAttachment) -> web.Response:
    """Symbolicator's form: fetch the attachment in the job, then answer as its own endpoint."""
    app = request.app
    req = native.NativeRequest.from_json({"stacktraces": [], **stored.fields})  # 422 for a wrong shape
    resolve = module_resolver(request, scope, req)
    resolve_unwind = unwind_resolver(request, scope, req.sources) if stored.kind == "minidump" else None
    limits, workers = app[SETTINGS].limits, app[WORKERS]

    async def work() -> dict[str, Any]:
        path: Path = await asyncio.to_thread(app[CACHES].downloads.temp_path, f".{stored.kind}")
        try:
            await fetch_attachment(app.get(FETCHER), stored, path, limits.max_body_bytes)
            if resolve_unwind is not None:
                facts = await minidump.read_facts(path, workers.run)
                fields: dict[str, Any] = {k: stored.fields[k] for k in ("sources", "options") if k in stored.fields}
                return await minidump.symbolicate_minidump(path, facts, fields, workers.run, resolve, resolve_unwind,
                                                           stored.rewrite_first_module)
            return await _apple_report(path, stored.fields, limits, resolve)
        finally:
            await asyncio.to_thread(path.unlink, True)

    return await run_job(request, scope, work)


async def _apple_report(path: Path, fields: dict[str, Any], limits: Any, resolve: native.Resolve) -> dict[str, Any]:
    try:
        report = await asyncio.to_thread(lambda: parse_apple_crash_report(path.read_bytes()))
        platform = fields.get("platform")
        body = to_symbolicate_request(report, platform=platform if isinstance(platform, str) else None)
        check_counts(body, limits)
    except (BadRequest, PayloadTooLarge) as exc:
        raise AttachmentUnavailable(f"the stored crash report cannot be symbolicated: {exc}") from exc
    body.update({k: fields[k] for k in ("sources", "options") if k in fields})
    payload = await native.symbolicate(native.NativeRequest.from_json(body), resolve)
    return {**response_fields(report), **payload}
