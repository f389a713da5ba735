"""A storage that takes its time, to make a crash window certain without a sleep in production.

`SlowStorage` wraps the real backend and waits before every write under the given key
prefixes, so a test can SIGKILL the service while an upload is being published and check
that nothing half-done survives. The service runs it through the seam `create_app` offers
(`storage_factory`); run it as the service is run::

    python -m tests.support.slow_storage --config FILE --delay 30 --prefix files/ --prefix index/

`ServiceProcess(..., command=slow_serve(30, "files/", "index/"))` does that for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Hashable, Iterator, Sequence
from pathlib import Path

from symbolicator.config import StorageSettings, load_settings
from symbolicator.storage.base import ObjectInfo, Storage
from symbolicator.storage.configured import open_storage


class SlowStorage:
    """`inner`, but every write to a key under one of `prefixes` first waits `delay_s`."""

    def __init__(self, inner: Storage, delay_s: float, prefixes: Sequence[str]) -> None:
        self.inner = inner
        self.delay_s = delay_s
        self.prefixes = tuple(prefixes)

    def _wait(self, key: str) -> None:
        if key.startswith(self.prefixes):
            time.sleep(self.delay_s)

    def put_bytes(self, key: str, data: bytes | bytearray) -> None:
        self._wait(key)
        self.inner.put_bytes(key, data)

    def put_file(self, key: str, path: Path) -> None:
        self._wait(key)
        self.inner.put_file(key, path)

    def compose(self, key: str, sources: Sequence[str]) -> None:
        self._wait(key)
        self.inner.compose(key, sources)

    def head(self, key: str) -> ObjectInfo | None:
        return self.inner.head(key)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        return self.inner.get_bytes(key, max_bytes)

    def get_to_path(self, key: str, path: Path) -> ObjectInfo:
        return self.inner.get_to_path(key, path)

    def delete(self, key: str) -> None:
        self.inner.delete(key)

    def list(self, prefix: str) -> Iterator[str]:
        return self.inner.list(prefix)

    def version(self, key: str) -> Hashable | None:
        return self.inner.version(key)


def slow_serve(delay_s: float, *prefixes: str) -> tuple[str, ...]:
    """The `ServiceProcess` command that serves with a `SlowStorage` (it adds `--config FILE`)."""
    return ("-m", "tests.support.slow_storage", "--delay", str(delay_s), *(f"--prefix={p}" for p in prefixes))


def main() -> None:
    from symbolicator.commands.serve import listen
    from symbolicator.web import server
    from symbolicator.web.app import create_app

    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config", required=True)
    p.add_argument("--delay", type=float, required=True)
    p.add_argument("--prefix", action="append", required=True)
    args = p.parse_args()
    settings = load_settings(args.config)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    def storage_factory(given: StorageSettings) -> Storage:
        return SlowStorage(open_storage(given), args.delay, args.prefix)

    settings.cache.dir.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, storage_factory=storage_factory)
    server.run(app, listen(settings.host, settings.port), asyncio.new_event_loop())


if __name__ == "__main__":
    main()
