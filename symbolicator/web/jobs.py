"""The HTTP side of jobs: `?timeout`, `?scope`, `GET /requests/{id}`.

Every symbolication endpoint hands its work to `run_job`, which starts it in the job
registry (`service/jobs.py`) and answers with Symbolicator's envelope (`completed` with
the payload flattened in, `pending`, `failed`, `timeout`, `internal_error`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from symbolicator.errors import InvalidShape, invalid_shape
from symbolicator.types import GLOBAL_SCOPE, Scope
from symbolicator.web.state import AUTH, SERVICES, SETTINGS

routes = web.RouteTableDef()


def request_scope(request: web.Request) -> Scope:
    """`?scope=` (URL-decoded), through `scope_aliases` (Sentry sends its numeric project id)."""
    raw = request.query.get("scope")
    if not raw:
        return GLOBAL_SCOPE
    aliases = request.app[SETTINGS].scope_aliases
    with invalid_shape():
        return Scope.parse(aliases.get(raw, raw))


def request_timeout(request: web.Request) -> float | None:
    raw = request.query.get("timeout")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise InvalidShape(f"timeout must be a number of seconds, got {raw!r}") from None
    if value < 0:
        raise InvalidShape("timeout must not be negative")
    return value


async def run_job(request: web.Request, scope: Scope, work: Callable[[], Awaitable[dict[str, Any]]]) -> web.Response:
    """Start `work` as a job and answer its envelope (or `pending`); the handler has authorised the
    request already, before reading its body."""
    timeout = request_timeout(request)
    return json_response(await request.app[SERVICES].jobs.run(scope, work, timeout,
                                                     request.app[SETTINGS].fetch.max_fetches_per_request))


def json_response(value: Any) -> web.Response:
    """orjson's bytes as the body: a JS answer with source context is ~100 KB, worth no str round trip."""
    return web.Response(body=orjson.dumps(value), content_type="application/json")


@routes.get("/requests/{request_id}")
async def poll(request: web.Request) -> web.Response:
    scope = request_scope(request)
    request.app[AUTH].require_symbolicate(request, scope)
    jobs = request.app[SERVICES].jobs
    job = jobs.get(request.match_info["request_id"], scope)
    return json_response(await jobs.wait(job, request_timeout(request)))
