"""Top-level functions for worker-pool tests (a process pool can only run importable functions)."""

from __future__ import annotations

import os
import signal


def pid() -> int:
    return os.getpid()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def square(x: int) -> int:
    return x * x
