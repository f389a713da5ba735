"""The contract every target is held to: typed errors only, and a bounded time per input.

The service turns the project's typed errors into a 4xx or a per-frame/per-module status
and keeps serving (`web/errors.py`); anything else escaping an engine becomes a 500, or
takes a worker process down with it. So an input passes when the engine returns, or
raises one of `ALLOWED` — the format family (`FormatError`: malformed objects, source maps,
crash reports, caches) and the bad-input family (`BadRequest`, `InvalidShape`,
`PayloadTooLarge`). Everything else is a `Violation`: an unhandled exception
(IndexError, struct.error, RecursionError, MemoryError, …), an input that runs past the
time limit (a hang is a crash: the request would time out), or a wrong answer where a
target checks one (a differential oracle).

The time limit is a `SIGALRM` timer that raises `InputTimeout`, a `BaseException`, so no
`except Exception` inside an engine can swallow it. It only interrupts Python code, which
is where loops hang; atheris runs use libFuzzer's own `-timeout` instead (it also
catches time spent inside C).
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from symbolicator.errors import BadRequest, FormatError, InvalidShape, PayloadTooLarge

ALLOWED: tuple[type[BaseException], ...] = (FormatError, BadRequest, InvalidShape, PayloadTooLarge)
DEFAULT_TIME_LIMIT = 5.0
"""Seconds one input may take. Seeds run in milliseconds; a request times out long before this matters."""


class Violation(AssertionError):
    """An input broke the contract. `kind`: `exception`, `hang` or `wrong`."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind


class InputTimeout(BaseException):
    """Raised by the timer inside the engine; a BaseException so engines cannot catch it."""


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Interrupt the block after `seconds` of wall time (main thread only; None: no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise InputTimeout()

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def check(run: Callable[[bytes], None], data: bytes, seconds: float | None = DEFAULT_TIME_LIMIT) -> None:
    """Run one input; return if it kept the contract, raise `Violation` (with the cause) if not."""
    try:
        with time_limit(seconds):
            run(data)
    except ALLOWED:
        return
    except Violation:
        raise
    except InputTimeout:
        raise Violation("hang", f"input of {len(data)} bytes ran past the {seconds} s limit") from None
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        raise Violation("exception", f"{type(exc).__name__}: {exc}"[:500]) from exc
