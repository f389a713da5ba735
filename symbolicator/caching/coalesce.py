"""One computation per key at a time: 50 events needing one map cause one download.

`Coalescer.run(key, factory)` starts `factory()` for the first caller of a key and
lets every concurrent caller of that key await the same task, sharing its result or
its exception. When the task ends the key is forgotten: results live in the cache,
not here, so a later call computes again unless the cache answers it.

The task runs shielded: a caller that is cancelled (its request timed out) stops
waiting, but the download or conversion goes on for the others and still lands in
the cache.

`Coalescer` itself is per process and per event loop; `get_or_compute` adds a
per-key file lock in the cache folder (`keylock.KeyLocks`), so processes sharing
the folder (`serve --processes N`) compute a key once too: the others wait for
the lock and find the stored result.

`get_or_compute` is the usual way in: cache lookup, then compute on a miss, all
coalesced per key, with outcomes and format errors stored as negative entries.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from symbolicator.caching.store import CacheEntry, CacheStore
from symbolicator.errors import FormatError, Outcome, UnsupportedFormat

T = TypeVar("T")

Compute = Callable[[], Awaitable["Path | Outcome"]]


class Coalescer:
    """Shares in-flight computations by key, within one event loop."""

    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        """How many keys are being computed right now."""
        return len(self._tasks)

    def __contains__(self, key: object) -> bool:
        return key in self._tasks

    async def run(self, key: str, factory: Callable[[], Awaitable[T]]) -> T:
        task = self._tasks.get(key)
        if task is None:
            task = asyncio.ensure_future(factory())
            self._tasks[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return cast(T, await asyncio.shield(task))

    def _forget(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every waiter left


@contextlib.asynccontextmanager
async def conversion_output(store: CacheStore, suffix: str) -> AsyncIterator[Path]:
    """A new temp file in `store` for a conversion (a `compute`) to write; removed when the
    conversion fails, so a crashed worker or a malformed input leaves nothing behind."""
    out = await asyncio.to_thread(store.temp_path, suffix)
    try:
        yield out
    except BaseException:
        out.unlink(missing_ok=True)
        raise


async def get_or_compute(store: CacheStore, coalescer: Coalescer, key: str, compute: Compute) -> CacheEntry:
    """The cache entry at `key`, computing it once on a miss.

    `compute()` returns the path of a freshly produced temp file (moved into the
    cache; best made with `store.temp_path()`), or an `Outcome` (stored as a negative
    entry with its default expiry), or raises a `FormatError` (stored as MALFORMED,
    or UNSUPPORTED for `UnsupportedFormat`, then re-raised). Any other exception
    propagates and nothing is stored: the next call computes again.

    Concurrent calls for one key share the lookup and the computation, within the
    process (the coalescer) and across processes on one cache folder (its key lock).
    """
    return await coalescer.run(key, lambda: _lookup_or_compute(store, key, compute))


async def _lookup_or_compute(store: CacheStore, key: str, compute: Compute) -> CacheEntry:
    entry = await asyncio.to_thread(store.get, key)
    if entry is not None:
        return entry
    async with store.locks.hold(key):
        entry = await asyncio.to_thread(store.get, key, False)  # another process may have computed it meanwhile
        if entry is not None:
            return entry
        return await _compute_and_store(store, key, compute)


async def _compute_and_store(store: CacheStore, key: str, compute: Compute) -> CacheEntry:
    try:
        result = await compute()
    except FormatError as exc:
        outcome = Outcome.UNSUPPORTED if isinstance(exc, UnsupportedFormat) else Outcome.MALFORMED
        await asyncio.to_thread(store.set_negative, key, outcome)
        raise
    if isinstance(result, Outcome):
        return await asyncio.to_thread(store.set_negative, key, result)
    if not isinstance(result, Path):
        raise TypeError(f"compute() for {key!r} returned {result!r}, not a Path or an Outcome")
    try:
        path = await asyncio.to_thread(store.put_file, key, result)
    except BaseException:
        result.unlink(missing_ok=True)
        raise
    return CacheEntry(path=path)
