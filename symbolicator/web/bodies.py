"""Request bodies as JSON, the one way every handler reads them.

A body over 1 MiB is parsed in a thread: a 50 MB event must not hold the event
loop while other requests wait. Not JSON → BadRequest (400); the size limit is
aiohttp's `client_max_size` (413).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from symbolicator.errors import BadRequest

PARSE_IN_THREAD_BYTES = 1 << 20


def loads(data: bytes | str, what: str = "the body") -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not JSON: {exc}") from None


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(loads, raw)
    return loads(raw)
