"""The exception tree and the closed sets of outcomes.

Engines raise typed exceptions; the API layer turns them into HTTP codes (only
`web/errors.py` decides which) or into per-frame / per-module statuses. Nothing
below `web/` knows about HTTP::

    SymbolicatorError
    ├── ConfigError                 bad settings: the service refuses to start
    ├── UsageError                  a command line that cannot run (the CLI exits 2)
    ├── RequestError                the caller sent something we cannot take
    │   ├── BadRequest              400: not JSON, bad multipart, bad chunk
    │   ├── InvalidShape            422: JSON of the wrong shape
    │   ├── Unauthorized            401: no or unknown token
    │   ├── Forbidden               403: token lacks the scope or the right
    │   ├── NotFound                404
    │   ├── RequestTimeout          408: the body did not arrive in time
    │   └── PayloadTooLarge         413
    ├── Overloaded                  503 with Retry-After: too many jobs
    ├── OverBudget                  a file that would cost more than its memory/CPU bound (a
    │                               per-frame marker or per-module status, never an HTTP code)
    ├── NotReady                    503: `GET /ready` found a dependency down
    ├── StorageError                a backend call failed (cause kept)
    │   ├── StorageUnavailable      503: the backend cannot be reached
    │   └── ObjectNotFound          the key does not exist
    └── FormatError                 an input file is not what it claims
        ├── UnsupportedFormat       a valid file of a kind we do not handle
        ├── MalformedObject         a broken ELF / Mach-O / DWARF / bundle
        │   └── MalformedMinidump   a broken minidump (also a BadRequest: 400)
        └── MalformedSourceMap      a broken source map

`FormatError`s carry a message meant for the user (it ends up in an assemble
`detail`, a module status or a JS error), never a traceback.
"""

from __future__ import annotations

import enum


class SymbolicatorError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(SymbolicatorError):
    """The settings are invalid; the message names the key."""


class UsageError(SymbolicatorError):
    """The command line asks for something that cannot run as given; the message says what to change."""


class RequestError(SymbolicatorError):
    """The caller's request cannot be served as sent."""


class BadRequest(RequestError):
    pass


class InvalidShape(RequestError):
    pass


class Unauthorized(RequestError):
    pass


class Forbidden(RequestError):
    pass


class NotFound(RequestError):
    pass


class PayloadTooLarge(RequestError):
    pass


class RequestTimeout(RequestError):
    """The client did not send its request within the server's deadline (`limits.body_timeout_s`)."""


class Overloaded(SymbolicatorError):
    """Too much work in flight; `retry_after` is in seconds."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class OverBudget(SymbolicatorError):
    """Processing a file would cost more memory or CPU than its configured bound."""


class NotReady(SymbolicatorError):
    """A dependency the service needs (storage, cache disk) is down; the message names it."""


class StorageError(SymbolicatorError):
    """A storage backend failed on `key`."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class StorageUnavailable(StorageError):
    pass


class ObjectNotFound(StorageError):
    pass


class FormatError(SymbolicatorError):
    """An input file is not what it claims to be."""


class UnsupportedFormat(FormatError):
    pass


class MalformedObject(FormatError):
    pass


class MalformedMinidump(MalformedObject, BadRequest):
    """Not a minidump, or a truncated / hostile one: a `FormatError` for the CLI and a
    `BadRequest` (400) for `/minidump`. The message names the stream and the offset."""


class MalformedSourceMap(FormatError):
    pass


class AssembleState(str, enum.Enum):
    """States of a chunked-upload assemble, as sentry-cli reads them."""

    NOT_FOUND = "not_found"
    CREATED = "created"
    ASSEMBLING = "assembling"
    OK = "ok"
    ERROR = "error"


class Outcome(str, enum.Enum):
    """What a cache entry or a lookup remembers when it has no content."""

    NOT_FOUND = "not_found"
    MALFORMED = "malformed"
    UNSUPPORTED = "unsupported"
    FETCH_FAILED = "fetching_failed"
    TIMEOUT = "timeout"


class FrameStatus(str, enum.Enum):
    """Per-frame result of native symbolication (Symbolicator's names)."""

    SYMBOLICATED = "symbolicated"
    MISSING_SYMBOL = "missing_symbol"
    UNKNOWN_IMAGE = "unknown_image"
    MISSING = "missing"
    MALFORMED = "malformed"


class ObjectFileStatus(str, enum.Enum):
    """Per-module `debug_status` (Symbolicator's names)."""

    FOUND = "found"
    UNUSED = "unused"
    MISSING = "missing"
    MALFORMED = "malformed"
    FETCHING_FAILED = "fetching_failed"
    TIMEOUT = "timeout"
    UNSUPPORTED = "unsupported"
    OTHER = "other"
