"""`Services` opened in-process: the service's parts without an HTTP server or a subprocess.

For tests that drive `services.native` / `services.js` directly, and that check what opening and
closing leave behind (tasks, threads). Settings go through the same TOML loader as `serve`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from symbolicator.config import Settings, load_settings
from symbolicator.service.services import Services
from tests.support.native_service import native_settings
from tests.support.service import write_toml


def services_settings(root: Path, **extra: Any) -> Settings:
    """`native_settings` (local storage and cache under `root`, one worker) as loaded `Settings`."""
    root.mkdir(parents=True, exist_ok=True)
    return load_settings(write_toml(root / "config.toml", native_settings(root, **extra)), env={})


@contextlib.asynccontextmanager
async def open_services(root: Path, **extra: Any) -> AsyncIterator[Services]:
    async with Services.open(services_settings(root, **extra)) as services:
        yield services


def threads_left(before: set[threading.Thread], wait_s: float = 10.0) -> list[threading.Thread]:
    """Threads started since `before` that are still alive after up to `wait_s` (pools wind down
    asynchronously after `shutdown(wait=False)`)."""
    deadline = time.monotonic() + wait_s
    while True:
        left = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)
