"""Uploaded objects as the service reads them: indexes, and files brought into the downloads cache.

Both engines read uploads this way (native debug files, JS artifact bundles):
- an index is answered from memory when the store vouches that it is unchanged
  (`IndexReader`), else read in a thread;
- a file is downloaded on a miss into a temp file of the downloads cache
  (blocking storage calls off the loop), concurrent requests share the download,
  and a missing object is remembered as a NOT_FOUND negative entry.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

from symbolicator.artifacts.indexes import NOT_REMEMBERED, IndexReader
from symbolicator.caching import CacheEntry, CacheStore, Coalescer, get_or_compute
from symbolicator.errors import ObjectNotFound, Outcome
from symbolicator.storage.base import Storage


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


async def read_index(reader: IndexReader, keys: Sequence[str]) -> dict[str, Any] | None:
    """The first index found among `keys` (None: none is there)."""
    found = reader.first_remembered(keys)
    if found is not NOT_REMEMBERED:
        return cast("dict[str, Any] | None", found)
    return await asyncio.to_thread(reader.first, keys)
