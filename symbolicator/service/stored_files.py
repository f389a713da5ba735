"""Uploaded objects brought into the downloads cache, once per key however many ask.

Both engines read uploads this way (native debug files, JS artifact bundles):
a miss downloads the storage object into a temp file of the downloads cache
(blocking storage calls off the loop), concurrent requests share the download,
and a missing object is remembered as a NOT_FOUND negative entry.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Callable

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
