"""The shared cache: converted files published for every instance (Symbolicator's "shared cache").

N instances behind a load balancer each convert a debug file or a source map once
into their own disk cache. With `cache.shared` set (an `s3://bucket/prefix` or a
folder), an instance that converted a file also publishes the result there, and
an instance about to convert looks there first: a release's symcaches are built
once for the whole fleet, not once per instance.

* **Keys** are `keys.shared_cache(cache_key)`: the derived-cache key, which
  already holds the format version (`SYMCACHE_VERSION`, `SOURCEMAP_CACHE_VERSION`)
  and the content identity, under a prefix carrying this envelope's version. A
  format change therefore never reads an old object.
* **Objects check themselves.** An object is the converted file followed by a
  small JSON of extras (the native meta: arch, `image_vmaddr`, features; the key
  it was published under) and a fixed trailer: magic, the sizes, the CRC-32 of the
  extras and the CRC-32 of the whole file. A download is checked whole before use;
  a truncated object (short, or no trailer), a flipped byte or an object under the
  wrong key is `SharedObjectDamaged`: counted, logged, and converted again (and the
  new result published over it). The trailer is cut off in place (`truncate`), so a
  hit costs one download and one pass of CRC-32, no copy.
* **Publishing never delays an answer.** `publish` opens the fresh file (cheap; the
  open file survives its move into the cache) and returns; a background task copies
  it with the trailer into a temp file and uploads that. Uploads still running at
  shutdown are waited for up to `CLOSE_WAIT_S`.
* **Lookups are coalesced** because they run inside the conversion's
  `get_or_compute`: one download per key per process (the `Coalescer`) and per
  cache folder (its key lock).
* **An unreachable store costs little.** The store sits behind an `OutageGuard`
  with short timeouts: after one failure, lookups and uploads fail at once for a
  while, and the instance converts locally and keeps answering. The shared cache
  is an optimisation: no failure of it fails a request.
* Negative outcomes (malformed, unsupported) are not shared: each instance finds
  them itself and remembers them in its own cache.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from symbolicator import keys
from symbolicator.caching.store import CacheStore
from symbolicator.errors import ObjectNotFound, SharedObjectDamaged, StorageError, SymbolicatorError

log = logging.getLogger(__name__)

MAGIC = b"SYMSHRD1"
TRAILER = struct.Struct("<8sQIII")  # magic, payload size, extras size, extras CRC-32, payload CRC-32
CLOSE_WAIT_S = 10.0
_BLOCK = 1 << 20

Events = Callable[[str], None]
"""Hears `hit`, `miss`, `damaged`, `error`, `published`, `publish_failed` (for metrics)."""


class SharedStore(Protocol):
    """What the shared cache needs of a store: the part of `storage.base.Storage` it calls.

    The caller passes one in (`storage.configured.open_shared_storage`), so `caching/` never
    imports `storage/`. A missing key raises `ObjectNotFound`, a failing store `StorageError`."""

    def get_to_path(self, key: str, path: Path) -> object: ...

    def put_file(self, key: str, path: Path) -> None: ...


class SharedCache:
    """Converted files in `storage` (`open_shared_storage`: S3 or a folder, behind an `OutageGuard`)."""

    def __init__(self, storage: SharedStore, events: Events | None = None) -> None:
        self.storage = storage
        self.events = events or (lambda event: None)
        self._publishing: dict[str, asyncio.Task[None]] = {}

    def __repr__(self) -> str:
        return f"SharedCache({self.storage!r})"

    async def fetch(self, key: str, into: CacheStore) -> tuple[Path, dict[str, Any]] | None:
        """The converted file of `key` in a temp file of `into` with its extras, or None (not there,
        damaged, or the store failing: the caller converts)."""
        tmp = await asyncio.to_thread(into.temp_path, ".shared")
        try:
            await asyncio.to_thread(self.storage.get_to_path, keys.shared_cache(key), tmp)
            extras = await asyncio.to_thread(unwrap, tmp, key)
        except ObjectNotFound:
            self.events("miss")
        except SharedObjectDamaged as exc:
            log.warning("shared cache: %s; converting again", exc)
            self.events("damaged")
        except (StorageError, OSError) as exc:
            log.warning("shared cache: cannot read %s (%s); converting locally", key, exc)
            self.events("error")
        else:
            self.events("hit")
            return tmp, extras
        tmp.unlink(missing_ok=True)
        return None

    async def publish(self, key: str, path: Path, extras: dict[str, Any], staging: CacheStore) -> None:
        """Upload the freshly converted file at `path` in the background: returns once it is open
        (it may be moved into the cache, or evicted, meanwhile)."""
        if key in self._publishing:
            return
        try:
            source = await asyncio.to_thread(open, path, "rb")
        except OSError as exc:
            log.warning("shared cache: cannot publish %s (%s)", key, exc)
            self.events("publish_failed")
            return
        task = asyncio.ensure_future(self._publish(key, source, extras, staging))
        self._publishing[key] = task
        task.add_done_callback(lambda _: self._publishing.pop(key, None))

    async def _publish(self, key: str, source: BinaryIO, extras: dict[str, Any], staging: CacheStore) -> None:
        tmp: Path | None = None
        try:
            tmp = await asyncio.to_thread(staging.temp_path, ".shared")
            await asyncio.to_thread(wrap, source, tmp, key, extras)
            await asyncio.to_thread(self.storage.put_file, keys.shared_cache(key), tmp)
        except (SymbolicatorError, OSError) as exc:
            log.warning("shared cache: publishing %s failed (%s)", key, exc)
            self.events("publish_failed")
        else:
            self.events("published")
        finally:
            source.close()
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    async def close(self) -> None:
        """Let uploads in flight finish (up to `CLOSE_WAIT_S`)."""
        pending = list(self._publishing.values())
        if pending:
            await asyncio.wait(pending, timeout=CLOSE_WAIT_S)


def wrap(source: BinaryIO, out: Path, key: str, extras: dict[str, Any]) -> None:
    """Write `source` + extras + trailer to `out` (a thread job)."""
    extra_bytes = json.dumps({**extras, "key": key}, sort_keys=True).encode()
    crc = size = 0
    with open(out, "wb") as f:
        while block := source.read(_BLOCK):
            crc = zlib.crc32(block, crc)
            size += len(block)
            f.write(block)
        f.write(extra_bytes)
        f.write(TRAILER.pack(MAGIC, size, len(extra_bytes), zlib.crc32(extra_bytes), crc))


def unwrap(path: Path, key: str) -> dict[str, Any]:
    """Check the downloaded object at `path` whole and cut it back to the converted file; its extras."""
    total = path.stat().st_size
    with open(path, "rb") as f:
        if total < TRAILER.size:
            raise SharedObjectDamaged(f"{key}: {total} bytes, shorter than its trailer", key)
        f.seek(total - TRAILER.size)
        magic, size, extra_size, extra_crc, crc = TRAILER.unpack(f.read(TRAILER.size))
        if magic != MAGIC or size + extra_size + TRAILER.size != total:
            raise SharedObjectDamaged(f"{key}: truncated or not a shared-cache object ({total} bytes)", key)
        f.seek(0)
        found, left = 0, size
        while left and (block := f.read(min(_BLOCK, left))):
            found = zlib.crc32(block, found)
            left -= len(block)
        extra_bytes = f.read(extra_size)
    if found != crc or zlib.crc32(extra_bytes) != extra_crc:
        raise SharedObjectDamaged(f"{key}: CRC-32 mismatch, the object was altered", key)
    try:
        extras: dict[str, Any] = json.loads(extra_bytes)
    except ValueError as exc:
        raise SharedObjectDamaged(f"{key}: unreadable extras", key) from exc
    if extras.pop("key", None) != key:
        raise SharedObjectDamaged(f"{key}: the object was published for another key", key)
    os.truncate(path, size)
    return extras
