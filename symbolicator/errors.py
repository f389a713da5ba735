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
    │   │                           per-frame marker or per-module status, never an HTTP code)
    │   └── NamesOverBudget         the function-name pass of a minified file
    ├── NotReady                    503: `GET /ready` found a dependency down
    ├── WorkerCrashed               the worker process running a job died (a module status)
    │   └── WorkerOutOfMemory       ... over its memory limit
    ├── EntryTooLarge               a value larger than the whole cache budget
    ├── CacheWriteFailed            the cache disk refused a write (the value is not cached)
    ├── Abandoned                   a pipelined upload gives up: assemble the plain way
    ├── UploadError                 `symbolicator upload`: the server refused or answered nonsense
    ├── FetchError                  an outbound fetch failed; `reason` is a `FetchReason`
    ├── StorageError                a backend call failed (cause kept)
    │   ├── StorageUnavailable      503: the backend cannot be reached
    │   ├── ObjectNotFound          the key does not exist
    │   └── SharedObjectDamaged     a shared-cache object is cut, altered or misplaced
    └── FormatError                 an input file is not what it claims
        ├── UnsupportedFormat       a valid file of a kind we do not handle
        ├── MalformedObject         a broken ELF / Mach-O / DWARF / bundle
        │   └── MalformedMinidump   a broken minidump (the API answers any FormatError with 400)
        ├── MalformedSourceMap      a broken source map
        ├── MalformedMapping        not a ProGuard / R8 mapping file
        ├── CacheFormatError        a cache file truncated, foreign or of another version: rebuild
        └── UnreadableInput         `symbolicate FILE`: none of the inputs it understands

Signals, caught inside the package and turned into a per-frame or per-module answer. They
are deliberately not `SymbolicatorError`s, so a broad `except SymbolicatorError` on the way
up cannot swallow one before the code that reports it::

    ForbiddenAddress (OSError)      the address policy refused a connect (inside aiohttp/boto)
    SourceConfigError (ValueError)  a source config that cannot be used (→ ConfigError / 422)
    InvalidId (ValueError)          a scope, debug id, code id, release or dist that does not parse
                                    (request models turn it into InvalidShape, engines into a status)
    LookupFailure                   a JS file not found or unreadable: the frame's JS error
    ScrapeFailure                   nothing scraped: the frame's JS error
    DownloadMiss                    nothing usable at a symbol-source location: a candidate status
    MissingChunk                    a chunk named by an assemble request is not stored

`FormatError`s carry a message meant for the user (it ends up in an assemble
`detail`, a module status or a JS error), never a traceback.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Iterator
from typing import Literal

__all__ = [
    "Abandoned",
    "AssembleState",
    "BadRequest",
    "CacheFormatError",
    "CacheWriteFailed",
    "ConfigError",
    "DownloadMiss",
    "EntryTooLarge",
    "FetchError",
    "FetchReason",
    "Forbidden",
    "ForbiddenAddress",
    "FormatError",
    "FrameStatus",
    "InvalidId",
    "InvalidShape",
    "JsErrorKind",
    "LookupFailure",
    "MalformedMinidump",
    "MalformedObject",
    "MalformedMapping",
    "MalformedSourceMap",
    "MissingChunk",
    "NamesOverBudget",
    "NotFound",
    "NotReady",
    "ObjectFileStatus",
    "ObjectNotFound",
    "Outcome",
    "OverBudget",
    "Overloaded",
    "PayloadTooLarge",
    "RequestError",
    "RequestTimeout",
    "ScrapeFailure",
    "SharedObjectDamaged",
    "SourceConfigError",
    "StorageError",
    "StorageUnavailable",
    "SymbolicatorError",
    "Unauthorized",
    "UnreadableInput",
    "UnsupportedFormat",
    "UploadError",
    "UsageError",
    "WorkerCrashed",
    "WorkerOutOfMemory",
    "invalid_shape",
]

FetchReason = Literal[
    "not_found", "denied", "invalid_host", "permission_denied", "timeout", "too_large", "download_error", "other"
]


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


class NamesOverBudget(OverBudget):
    """The function-name pass of a minified file would cost more memory than its budget."""


class NotReady(SymbolicatorError):
    """A dependency the service needs (storage, cache disk) is down; the message names it."""


class WorkerCrashed(SymbolicatorError):
    """The worker process running a job died (twice: see the module docstring)."""


class WorkerOutOfMemory(WorkerCrashed):
    """The job ran into the worker's memory limit."""


class EntryTooLarge(SymbolicatorError):
    """A value does not fit in the cache's budget at all."""


class CacheWriteFailed(SymbolicatorError):
    """The cache's disk refused a write (full, read-only, failing): the value is not cached."""


class Abandoned(SymbolicatorError):
    """The pipeline cannot give the file (a chunk of another size): assemble it the plain way."""


class UploadError(SymbolicatorError):
    """The server refused an upload or answered something we cannot read."""


class FetchError(SymbolicatorError):
    """A fetch failed; `reason` is one of `FetchReason`, `status` the HTTP status if any."""

    def __init__(self, reason: FetchReason, message: str, *, url: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.reason: FetchReason = reason
        self.url = url
        self.status = status


class StorageError(SymbolicatorError):
    """A storage backend failed on `key`."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class StorageUnavailable(StorageError):
    pass


class ObjectNotFound(StorageError):
    pass


class SharedObjectDamaged(StorageError):
    """A shared-cache object is truncated, altered or not the one asked for."""


class FormatError(SymbolicatorError):
    """An input file is not what it claims to be."""


class JobInputRejected(SymbolicatorError):
    """What a running job was given cannot be processed as sent, which could not be known before
    it ran: the job answers `{"status": "failed", "message": …}`, as Symbolicator does."""


class AttachmentUnavailable(JobInputRejected):
    """A stored attachment (`/symbolicate-any`'s `storage_url`) could not be fetched or is not
    usable as sent."""


class RewriteRulesTooSlow(InvalidShape, JobInputRejected):
    """`rewrite_first_module` ran past its time budget (Python's `re` backtracks where Rust's
    engine does not): 422 before a job, `failed` inside one."""


class UnsupportedFormat(FormatError):
    pass


class MalformedObject(FormatError):
    pass


class MalformedMinidump(MalformedObject):
    """Not a minidump, or a truncated / hostile one (exit 1 on the CLI, 400 on `/minidump` like
    every `FormatError` in a request's body). The message names the stream and the offset."""


class MalformedMapping(FormatError):
    """A ProGuard / R8 mapping that maps no class (`proguard.mapping`)."""


class MalformedSourceMap(FormatError):
    pass


class CacheFormatError(FormatError):
    """A cache file that is truncated, foreign or of another version: rebuild it."""


class UnreadableInput(FormatError):
    """FILE is none of the inputs `symbolicate` understands; the message says what it was taken for."""


# Signals: caught inside the package and turned into an answer; never a SymbolicatorError, so
# no `except SymbolicatorError` swallows one on its way to the code that reports it.


class ForbiddenAddress(OSError):
    """Raised inside a connect path (aiohttp's, or an S3 client's) when the policy refuses an address."""

class SourceConfigError(ValueError):
    """A source config that cannot be used; the message names the source and the field."""


class InvalidId(ValueError):
    """An identifier (`types.py`: scope, debug id, code id, release, dist) that does not parse.

    A value error, not a request error: inside a file it makes the file malformed, in a request
    `invalid_shape()` makes it the request's `InvalidShape`."""


@contextlib.contextmanager
def invalid_shape(where: str = "") -> Iterator[None]:
    """For request models: an `InvalidId` in the block becomes `InvalidShape`, prefixed with `where`."""
    try:
        yield
    except InvalidId as exc:
        raise InvalidShape(f"{where}: {exc}" if where else str(exc)) from None

class LookupFailure(Exception):
    """A file was not found or cannot be read; `error` is the JS error type to report, `details`
    what a user needs to fix it (a bundle member over the size cap)."""

    def __init__(self, error: JsErrorKind, details: str | None = None) -> None:
        super().__init__(error.value)
        self.error = error
        self.details = details

class ScrapeFailure(Exception):
    """Nothing was scraped; `error` is the JS error type for the frame."""

    def __init__(self, error: JsErrorKind) -> None:
        super().__init__(error.value)
        self.error = error

class DownloadMiss(Exception):
    """Nothing usable at a location: `status` is a candidate download status, `timeout` flags a timeout."""

    def __init__(self, status: str, details: str | None = None, *, timeout: bool = False) -> None:
        super().__init__(details or status)
        self.status = status
        self.details = details
        self.timeout = timeout

class MissingChunk(Exception):
    """A chunk named by an assemble request is not in storage (any more)."""

    def __init__(self, sha1: str) -> None:
        super().__init__(f"chunk {sha1} is missing")
        self.sha1 = sha1


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


class JsErrorKind(str, enum.Enum):
    """Per-frame JS error `type` (Symbolicator's `JsModuleErrorKind` names): why a frame stayed minified."""

    INVALID_LOCATION = "invalid_location"
    INVALID_ABS_PATH = "invalid_abs_path"
    NO_COLUMN = "no_column"
    MISSING_SOURCE_CONTENT = "missing_source_content"
    MISSING_SOURCE = "missing_source"
    MALFORMED_SOURCEMAP = "malformed_sourcemap"
    MISSING_SOURCEMAP = "missing_sourcemap"
    INVALID_BASE64_SOURCEMAP = "invalid_base64_sourcemap"
    SCRAPING_DISABLED = "scraping_disabled"


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
