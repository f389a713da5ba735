"""Top-level functions for worker-pool tests (a process pool can only run importable functions)."""

from __future__ import annotations

import os
import signal
import time


def pid() -> int:
    return os.getpid()


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def square(x: int) -> int:
    return x * x


def slow_square(x: int, delay_s: float) -> int:
    time.sleep(delay_s)
    return x * x


def die_after(delay_s: float) -> None:
    time.sleep(delay_s)
    os.kill(os.getpid(), signal.SIGKILL)


def allocate(n_bytes: int) -> int:
    """Touch `n_bytes` of fresh heap (a MemoryError under a lower RLIMIT_DATA)."""
    block = bytearray(n_bytes)
    return len(block)
