"""Uploaded objects as the service reads them: indexes, and files brought into the downloads cache.

Both engines read uploads this way (native debug files, JS artifact bundles):
- an index is answered from memory when the store vouches that it is unchanged
  (`IndexReader`; on S3 through the scope's generation marker, read once per
  request by `ScopeIndexes`), else read in a thread;
- a file is downloaded on a miss into a temp file of the downloads cache
  (blocking storage calls off the loop), concurrent requests share the download,
  and a missing object is remembered as a NOT_FOUND negative entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any, cast

from symbolicator.artifacts.indexes import NOT_REMEMBERED, IndexReader
from symbolicator.caching import CacheEntry, CacheStore, Coalescer, get_or_compute
from symbolicator.errors import ObjectNotFound, Outcome
from symbolicator.storage.base import Storage
from symbolicator.types import Scope


async def cached_download(storage: Storage, downloads: CacheStore, coalescer: Coalescer, cache_key: str,
                          storage_key: str, on_download: Callable[[], None] | None = None) -> CacheEntry:
    """The cache entry for `storage_key`; `on_download` hears each real download (for metrics)."""

    async def download() -> Path | Outcome:
        tmp = await asyncio.to_thread(downloads.temp_path)
        try:
            await asyncio.to_thread(storage.get_to_path, storage_key, tmp)
        except ObjectNotFound:
            tmp.unlink(missing_ok=True)
            return Outcome.NOT_FOUND
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        if on_download is not None:
            on_download()
        return tmp

    return await get_or_compute(downloads, coalescer, cache_key, download)


class ScopeIndexes:
    """One request's reads of one scope's indexes.

    Where the store cannot version each index itself (S3), the scope's
    generation marker is read once, by the first index read of the request, and
    every index the request needs is then answered from memory while it is
    unchanged: a warm request costs one small read, however many modules or
    URLs it looks up. Everything read before the request started is checked
    against a marker read after it, so an upload finished before is seen.
    """

    def __init__(self, reader: IndexReader, scope: Scope) -> None:
        self.reader = reader
        self.scope = scope
        self._generation: asyncio.Future[Hashable | None] | None = None

    async def first(self, keys: Sequence[str]) -> dict[str, Any] | None:
        """The first index found among `keys` (None: none is there)."""
        generation = await self._current_generation()
        found = self.reader.first_remembered(keys, generation)
        if found is not NOT_REMEMBERED:
            return cast("dict[str, Any] | None", found)
        return await asyncio.to_thread(self.reader.first, keys, generation)

    async def _current_generation(self) -> Hashable | None:
        if not self.reader.needs_generation:
            return None
        if self._generation is None:
            self._generation = asyncio.ensure_future(asyncio.to_thread(self.reader.generation, self.scope))
        return await asyncio.shield(self._generation)
