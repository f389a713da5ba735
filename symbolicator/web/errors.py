"""The one place that turns exceptions into HTTP status codes.

Handlers and the service raise typed errors; this middleware answers
`{"detail": …}` with the code below. A `FormatError` that reaches it means the
request's own body (an uploaded file, a crash report) is malformed: 400. Anything unexpected is a 500, logged once
with its traceback, and the service keeps serving.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from symbolicator.errors import (
    BadRequest,
    Forbidden,
    FormatError,
    InvalidShape,
    NotFound,
    NotReady,
    Overloaded,
    PayloadTooLarge,
    RequestTimeout,
    StorageUnavailable,
    SymbolicatorError,
    Unauthorized,
)

log = logging.getLogger(__name__)

STATUS: dict[type[Exception], int] = {
    InvalidShape: 422,
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    PayloadTooLarge: 413,
    RequestTimeout: 408,
    Overloaded: 503,
    NotReady: 503,
    StorageUnavailable: 503,
    FormatError: 400,
}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def error_response(status: int, detail: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"detail": detail}, status=status, headers=headers)


def status_for(exc: BaseException) -> int | None:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return None


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except SymbolicatorError as exc:
        status = status_for(exc)
        if status is None:
            log.exception("internal error on %s %s", request.method, request.path)
            return error_response(500, "internal error")
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, Overloaded) else None
        if isinstance(exc, StorageUnavailable):
            headers = {"Retry-After": "5"}
        return error_response(status, str(exc), headers)
    except web.HTTPRequestEntityTooLarge:
        return error_response(413, f"request body too large: limits.max_body_bytes is {request.client_max_size}")
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        detail = exc.text if exc.text and exc.content_type == "application/json" else exc.reason
        return error_response(exc.status, detail, {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)
    except Exception:
        log.exception("internal error on %s %s", request.method, request.path)
        return error_response(500, "internal error")
