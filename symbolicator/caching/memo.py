"""Per-process memos in front of the disk cache: a small LRU, and opened cache files.

A warm request must not pay for a cache-database transaction or a file open, so
opened sourcemap caches and symcaches are kept in memory by their cache key. A
memo hit never reaches the disk cache, though, and that has two costs:
- the disk cache's LRU sees the hottest files as unused and evicts them first;
- a memory map of a file the disk cache has evicted keeps its disk space.
`OpenedFiles` therefore asks the store again when a memoized file was last
checked more than `recheck_s` ago: that refreshes the file's place in the disk
LRU, and a file the store no longer has leaves the memo. Every hit is also
noted with the store (`note_use`), which counts it as an access at its next
cull, so a cache turning over faster than `recheck_s` still keeps a hot file;
and files evicted meanwhile leave the memo whenever a new one is opened. Every
hit also compares
the file's state (one stat): a file rewritten or damaged on disk since it was
opened leaves the memo at once, so the caller goes back to the store, which
checks and rebuilds it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Hashable
from pathlib import Path
from typing import Generic, TypeVar

from symbolicator.caching.store import CacheStore, FileState

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

RECHECK_S = 5.0


class Lru(Generic[K, V]):
    """A small LRU by item count and (optionally) total size."""

    def __init__(self, max_items: int, max_size: int | None = None) -> None:
        self.max_items, self.max_size = max_items, max_size
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._size = 0

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is None:
            return None
        self._items.move_to_end(key)
        return found[0]

    def put(self, key: K, value: V, size: int = 0) -> V:
        self.pop(key)
        self._items[key] = (value, size)
        self._size += size
        while len(self._items) > self.max_items or (self.max_size is not None and self._size > self.max_size
                                                    and len(self._items) > 1):
            _, (_, dropped) = self._items.popitem(last=False)
            self._size -= dropped
        return value

    def items(self) -> list[tuple[K, V]]:
        return [(k, v) for k, (v, _) in self._items.items()]

    def pop(self, key: K) -> V | None:
        old = self._items.pop(key, None)
        if old is None:
            return None
        self._size -= old[1]
        return old[0]


class _Memoized(Generic[V]):
    __slots__ = ("value", "checked", "path", "state")

    def __init__(self, value: V, path: Path | None) -> None:
        self.value = value
        self.checked = time.monotonic()
        self.path = path
        self.state = FileState.of(path) if path is not None else None


class OpenedFiles(Generic[V]):
    """Objects opened from derived-cache entries, by (cache key, variant), kept in step with the store.

    Values are never closed here: a request may still be using one when it leaves the
    memo; its memory map goes when the last reference does.
    """

    def __init__(self, max_items: int, max_size: int | None = None, recheck_s: float = RECHECK_S) -> None:
        self._lru: Lru[tuple[str, Hashable], _Memoized[V]] = Lru(max_items, max_size)
        self.recheck_s = recheck_s

    def __len__(self) -> int:
        return len(self._lru.items())

    async def get(self, store: CacheStore, key: str, variant: Hashable = None,
                  companions: tuple[str, ...] = ()) -> V | None:
        """The memoized value; `companions` are entries it was opened with (e.g. its meta),
        kept in the disk LRU alongside it."""
        memo = self._lru.get((key, variant))
        if memo is None:
            return None
        if memo.path is not None and FileState.of(memo.path) != memo.state:
            self._lru.pop((key, variant))
            return None
        store.note_use(key)
        for companion in companions:
            store.note_use(companion)
        now = time.monotonic()
        if now - memo.checked >= self.recheck_s:
            memo.checked = now
            if not await asyncio.to_thread(_all_present, store, (key, *companions)):
                self._lru.pop((key, variant))
                return None
        return memo.value

    def put(self, key: str, value: V, variant: Hashable = None, size: int = 0, path: Path | None = None) -> V:
        """Memoize `value` (opened from `path`) unless a concurrent request did first; the
        memoized one is returned."""
        memo = self._lru.get((key, variant))
        if memo is not None:
            return memo.value
        self._forget_gone()
        self._lru.put((key, variant), _Memoized(value, path), size)
        return value

    def _forget_gone(self) -> None:
        """Drop entries whose file the store has evicted meanwhile: a memory map of an unlinked
        file keeps its disk space, and a file opened once and never asked for again would
        otherwise stay until the LRU pushed it out."""
        for memo_key, memo in self._lru.items():
            if memo.path is not None and FileState.of(memo.path) != memo.state:
                self._lru.pop(memo_key)


def _all_present(store: CacheStore, keys: tuple[str, ...]) -> bool:
    """Each `get` also moves the entry to the front of the disk LRU."""
    present = True
    for key in keys:
        entry = store.get(key)
        present = present and entry is not None and entry.path is not None
    return present
