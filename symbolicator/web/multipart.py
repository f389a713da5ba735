"""Reading `multipart/form-data` bodies so that a malformed one is the client's error (400), never a 500.

aiohttp's multipart reader reports a broken body in many ways (`ValueError`
"Could not find starting boundary", `InvalidHeader`, `AssertionError`, a part that
just stops when the body ends without its closing boundary). The routes that take
multipart bodies (chunk upload, single-file upload, `/applecrashreport`) read
through these three calls, which turn each of those into `BadRequest` with a
`detail` that says what was wrong, and refuse a truncated part before its bytes
are used.
"""

from __future__ import annotations

from aiohttp import BodyPartReader, MultipartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from symbolicator.errors import BadRequest, PayloadTooLarge

_MALFORMED = (ValueError, AssertionError, LookupError, HttpProcessingError)


def _reason(exc: Exception) -> str:
    text = exc.message if isinstance(exc, HttpProcessingError) else str(exc)
    return " ".join(str(text).split()) or type(exc).__name__


async def open_form(request: web.Request, expected: str) -> MultipartReader:
    """The body's reader; `expected` names the parts the route wants, for the error message."""
    try:
        return await request.multipart()
    except _MALFORMED as exc:
        raise BadRequest(f"expected multipart/form-data with {expected}: {_reason(exc)}") from exc


async def next_part(reader: MultipartReader) -> BodyPartReader | None:
    """The next form field, or None after the closing boundary."""
    try:
        part = await reader.next()
    except _MALFORMED as exc:
        raise BadRequest(f"malformed multipart body: {_reason(exc)}") from exc
    if part is None:
        return None
    if not isinstance(part, BodyPartReader):
        raise BadRequest("malformed multipart body: nested multipart parts are not accepted")
    return part


async def read_block(part: BodyPartReader, size: int) -> bytes:
    """Up to `size` bytes of the part; b"" only at its real end (a part cut off by the end of the body is refused)."""
    try:
        block = await part.read_chunk(size)
    except _MALFORMED as exc:
        raise BadRequest(f"malformed multipart body in field {part.name!r}: {_reason(exc)}") from exc
    if not block and not part.at_eof():
        raise BadRequest(f"malformed multipart body: field {part.name!r} ends without a closing boundary")
    return block


async def read_part(part: BodyPartReader, limit: int, setting: str) -> bytes:
    """The whole part, refused past `limit` bytes (413 naming `setting`)."""
    chunks, size = [], 0
    while block := await read_block(part, 1 << 16):
        size += len(block)
        if size > limit:
            raise PayloadTooLarge(f"multipart field {part.name!r} is larger than {limit} bytes ({setting})")
        chunks.append(block)
    return b"".join(chunks)
