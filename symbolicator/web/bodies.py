"""Request bodies as JSON, the one way every handler reads them, and the caps on their shape.

A body over 1 MiB is checked and parsed in a thread: a 50 MB event must not
hold the event loop while other requests wait. Not JSON → BadRequest (400);
the byte limit is aiohttp's `client_max_size` (413).

Nesting is capped (`limits.max_json_depth`, 400 beyond) because what comes in
goes out: frames are echoed in the response, and orjson refuses to *write*
anything nested deeper than 254, so a deep body would otherwise parse fine and
fail as a 500 after the work was done (orjson refuses to *read* past 1024:
that too is a 400, from the parse). The depth is measured on the bytes
before parsing, in a few C/numpy passes instead of a walk over the parsed
objects: `translate` keeps only `"[]{}`, quote parity masks the brackets inside
strings, and a running sum of ±1 gives the depth. Escapes are removed first
(`\\\\`, then `\\"`), which is exact for valid JSON; invalid JSON may measure
wrong but is refused by the parser anyway. A body with no more openings than
the limit cannot nest deeper, and two byte counts say so without numpy.

The frame count is capped too (`limits.max_frames_per_request`, 413): the
byte limit alone lets a 55 MB body carry two million tiny frames, each a
lookup, and a caller can always split such an event. So are the stack traces
and modules (`limits.max_stacktraces_per_request`, `max_modules_per_request`):
`{"stacktraces": [{}] × 10⁶}` is 6 MB without a single frame, and building
its request model held the event loop for 9 s (300k modules: 3.5 s).

`read_request` does it all for a symbolication endpoint: parse, count, build
the request model; for a body over 1 MiB all three run in a thread, so the
loop keeps serving while a big one is checked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import orjson
from aiohttp import web

from symbolicator.config import LimitsSettings
from symbolicator.errors import BadRequest
from symbolicator.service.request_limits import check_counts
from symbolicator.web.state import SETTINGS

PARSE_IN_THREAD_BYTES = 1 << 20
T = TypeVar("T")

_NOT_STRUCTURAL = bytes(b for b in range(256) if b not in b'"[]{}')
_QUOTE = 0x80
_MARKS = bytes.maketrans(b'"[{]}', bytes([_QUOTE, 1, 1, 0xFF, 0xFF]))
_CHUNK = 1 << 16


def nesting_depth(raw: bytes, stop_above: int | None = None) -> int:
    """How deep arrays and objects nest in JSON text (`[]` is 1, `{"a": [1]}` is 2), without parsing it.

    With `stop_above`, stops at the first 64 KiB step whose depth passes it:
    a body of a million `[` costs one `translate` and one step, not the numpy
    work over all of it.
    """
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    marks = np.frombuffer(raw.translate(_MARKS, _NOT_STRUCTURAL), dtype=np.int8)
    deepest = level = 0
    in_string = np.uint8(0)
    for start in range(0, len(marks), _CHUNK):
        part = marks[start:start + _CHUNK]
        quotes = (part.view(np.uint8) == _QUOTE).view(np.uint8)
        inside = np.bitwise_xor.accumulate(quotes) ^ in_string
        steps = part & ((inside | quotes) - np.uint8(1)).view(np.int8)
        levels = np.cumsum(steps, dtype=np.int32)
        deepest = max(deepest, level + int(levels.max()))
        if stop_above is not None and deepest > stop_above:
            break
        level += int(levels[-1])
        in_string = inside[-1]
    return deepest


def loads(data: bytes | str, max_depth: int, what: str = "the body") -> Any:
    """Parse JSON nested at most `max_depth` deep; anything else is a BadRequest naming the reason."""
    raw = data.encode() if isinstance(data, str) else data
    if (len(raw) > 2 * max_depth and raw.count(b"[") + raw.count(b"{") > max_depth
            and nesting_depth(raw, max_depth) > max_depth):
        raise BadRequest(f"{what} nests arrays/objects deeper than {max_depth} levels (limits.max_json_depth)")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"{what} is not JSON: {exc}") from None


async def read_json(request: web.Request) -> Any:
    raw = await request.read()
    max_depth = request.app[SETTINGS].limits.max_json_depth
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(loads, raw, max_depth)
    return loads(raw, max_depth)


async def read_request(request: web.Request, build: Callable[[Any], T]) -> T:
    """The body as a request model: `build` runs on the parsed body once it passed every cap."""
    raw = await request.read()
    limits = request.app[SETTINGS].limits
    if len(raw) > PARSE_IN_THREAD_BYTES:
        return await asyncio.to_thread(parse_request, raw, limits, build)
    return parse_request(raw, limits, build)


def parse_request(raw: bytes, limits: LimitsSettings, build: Callable[[Any], T]) -> T:
    """Parse (depth-capped), check the counts, build: 400, 413 or the model's own 422."""
    body = loads(raw, limits.max_json_depth)
    check_counts(body, limits)
    return build(body)
