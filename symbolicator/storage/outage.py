"""`OutageGuard`: how the service talks to a store that may go away for a while.

When S3 stops answering, a bare `S3Storage` call spends its connect timeout and
retries (seconds) before it fails, on the small thread pool every request shares.
Two things keep the service useful meanwhile:

* **Fail fast while the store is down** (a circuit breaker). After a call fails
  with `StorageUnavailable`, calls in the next `retry_s` seconds fail at once with
  `StorageUnavailable` (503 + Retry-After for uploads). Then one call at a time
  probes the store while the others keep failing fast; the first call the store
  answers (an object, or "no such key") closes the breaker. Recovery needs no
  restart: it is noticed within `retry_s` plus one call.
* **Answer from what was last read** (stale-if-error). Small objects read with
  `get_bytes` (the debug-id and JS indexes, assemble states) are remembered with
  their last answer, found or not found, and updated by every read and write
  through this guard. While the store is unavailable a remembered key answers
  from memory, so a warm request, whose symcache or sourcemap cache is already
  on local disk and needs S3 only for the small index naming it, still succeeds.
  A key never read answers `StorageUnavailable`: a cold request needs S3 anyway.
  When the store answers, its answer wins; another instance's upload is seen at
  the first read after the outage. The memory is bounded (LRU by count and by
  bytes) and lives as long as the process.

Errors other than `StorageUnavailable` (`ObjectNotFound`, a refused key) mean the
store answered, so they pass through and close the breaker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

from symbolicator.errors import ObjectNotFound, StorageUnavailable
from symbolicator.storage.base import ObjectInfo, Storage

log = logging.getLogger(__name__)
T = TypeVar("T")

RETRY_S = 1.0
REMEMBER_MAX_OBJECT = 256 * 1024
REMEMBER_MAX_ITEMS = 50_000
REMEMBER_MAX_BYTES = 64 * 1024 * 1024
_UNKNOWN = object()


class LastRead:
    """The last answer per key: bytes, or None for "no such key"; LRU by count and total bytes."""

    def __init__(self, max_items: int = REMEMBER_MAX_ITEMS, max_bytes: int = REMEMBER_MAX_BYTES) -> None:
        self.max_items, self.max_bytes = max_items, max_bytes
        self._items: OrderedDict[str, bytes | None] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: str) -> object:
        """The remembered answer, or `_UNKNOWN`."""
        with self._lock:
            if key not in self._items:
                return _UNKNOWN
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: str, data: bytes | None) -> None:
        if data is not None and len(data) > REMEMBER_MAX_OBJECT:
            self.forget(key)
            return
        with self._lock:
            self._drop(key)
            self._items[key] = data
            self._bytes += len(data or b"")
            while len(self._items) > self.max_items or self._bytes > self.max_bytes:
                self._drop(next(iter(self._items)))

    def forget(self, key: str) -> None:
        with self._lock:
            self._drop(key)

    def _drop(self, key: str) -> None:
        old = self._items.pop(key, _UNKNOWN)
        if isinstance(old, bytes):
            self._bytes -= len(old)


class OutageGuard:
    """A `Storage` around `backend`: breaker + last-read answers (module docstring)."""

    def __init__(self, backend: Storage, retry_s: float = RETRY_S, remembered: LastRead | None = None) -> None:
        self.backend = backend
        self.retry_s = retry_s
        self.remembered = remembered if remembered is not None else LastRead()
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._retry_at = 0.0
        self._probing = False

    def __repr__(self) -> str:
        return f"OutageGuard({self.backend!r})"

    def __getattr__(self, name: str) -> Any:
        """Backend-specific extras (`root`, `bucket`, `check`) stay reachable."""
        if name == "backend":
            raise AttributeError(name)
        return getattr(self.backend, name)

    def head(self, key: str) -> ObjectInfo | None:
        return self._call(self.backend.head, key)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        try:
            data = self._call(self.backend.get_bytes, key, max_bytes)
        except ObjectNotFound:
            self.remembered.put(key, None)
            raise
        except StorageUnavailable:
            known = self.remembered.get(key)
            if known is _UNKNOWN or (isinstance(known, bytes) and max_bytes is not None and len(known) > max_bytes):
                raise
            if known is None:
                raise ObjectNotFound(f"no object at {key!r} (last answer before the store became unavailable)",
                                     key) from None
            assert isinstance(known, bytes)
            return known
        self.remembered.put(key, data)
        return data

    def get_to_path(self, key: str, path: Path) -> ObjectInfo:
        return self._call(self.backend.get_to_path, key, path)

    def put_bytes(self, key: str, data: bytes | bytearray) -> None:
        self.remembered.forget(key)
        self._call(self.backend.put_bytes, key, data)
        self.remembered.put(key, bytes(data))

    def put_file(self, key: str, path: Path) -> None:
        self.remembered.forget(key)
        self._call(self.backend.put_file, key, path)

    def compose(self, key: str, sources: Sequence[str]) -> None:
        self.remembered.forget(key)
        self._call(self.backend.compose, key, sources)

    def delete(self, key: str) -> None:
        self.remembered.forget(key)
        self._call(self.backend.delete, key)
        self.remembered.put(key, None)

    def list(self, prefix: str) -> Iterator[str]:
        return self._call(self.backend.list, prefix)

    def version(self, key: str) -> Hashable | None:
        return self.backend.version(key)

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        self._enter(args[0] if args and isinstance(args[0], str) else None)
        try:
            result = fn(*args)
        except StorageUnavailable as exc:
            self._failed(exc)
            raise
        except BaseException:
            self._answered()
            raise
        self._answered()
        return result

    def _enter(self, key: str | None) -> None:
        """Let the call through, or fail it at once while the store is known to be down."""
        with self._lock:
            if self._down_since is None:
                return
            now = time.monotonic()
            if now >= self._retry_at and not self._probing:
                self._probing = True
                return
            down_for = now - self._down_since
        raise StorageUnavailable(f"storage unavailable (down for {down_for:.0f} s); retry later", key)

    def _failed(self, exc: StorageUnavailable) -> None:
        with self._lock:
            now = time.monotonic()
            if self._down_since is None:
                self._down_since = now
                log.warning("storage unavailable: %s; failing fast and answering reads from memory until it is back",
                            exc)
            self._retry_at = now + self.retry_s
            self._probing = False

    def _answered(self) -> None:
        if self._down_since is None:
            return
        with self._lock:
            if self._down_since is not None:
                log.warning("storage is back after %.1f s", time.monotonic() - self._down_since)
            self._down_since = None
            self._probing = False
