"""Upload chunks: content-addressed by the SHA-1 of their raw bytes, each org's own.

A chunk is verified before it is stored (its name must be its SHA-1), so a
stored chunk is always right and assembling never has to doubt it. Storing
chunks in `Storage` rather than on a local disk lets any instance assemble what
another received, and makes an interrupted upload resumable: the client is told
only the chunks still missing.

The bytes are stored once whoever sent them, but each org that sent a chunk gets
an owner marker (`keys.chunk_owner`), as Sentry keeps an owner per blob, and a
chunk counts as present only for the orgs that sent it. Otherwise knowing a
file's SHA-1s would be enough to assemble another tenant's file into one's own
scope (and read its sources), and `missingChunks` would tell anyone whether
another tenant had uploaded a file.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import zlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from symbolicator import keys
from symbolicator.errors import BadRequest, MissingChunk, ObjectNotFound
from symbolicator.storage.base import Storage
from symbolicator.types import Scope

_SHA1 = re.compile(r"^[0-9a-f]{40}$")
HEAD_BYTES = 32
"""Kept in a chunk's owner marker: enough to tell a file's format before it is assembled."""


class ChunkError(BadRequest):
    """A chunk is refused: bad name, bad gzip, too large, or not the bytes its name says."""


def check_sha1(name: str) -> str:
    value = name.strip().lower()
    if not _SHA1.match(value):
        raise ChunkError(f"invalid chunk name {name!r}: expected the SHA-1 hex digest of the chunk")
    return value


def gunzip_capped(data: bytes | bytearray, max_bytes: int) -> bytearray:
    """Decompress a (possibly multi-member) gzip chunk, refusing more than `max_bytes` of output."""
    out = bytearray()
    rest = data
    while rest:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            out += d.decompress(rest, max_bytes + 1 - len(out))
        except zlib.error as exc:
            raise ChunkError(f"chunk is not valid gzip: {exc}") from exc
        if len(out) > max_bytes or d.unconsumed_tail:
            raise ChunkError(f"chunk size too large: more than {max_bytes} bytes uncompressed")
        if not d.eof:
            raise ChunkError("chunk is truncated gzip")
        rest = d.unused_data
    return out


Observe = Callable[[str, float, int], None]


def _ignore(phase: str, seconds: float, size: int) -> None:
    pass


class ChunkStore:
    """`observe(phase, seconds, bytes)` hears how long each step took (for metrics and benchmarks)."""

    def __init__(self, storage: Storage, chunk_size: int, observe: Observe = _ignore) -> None:
        self.storage = storage
        self.chunk_size = chunk_size
        self.observe = observe

    def put(self, org: Scope, name: str, body: bytes | bytearray, gzipped: bool) -> tuple[str, bytes | bytearray]:
        """Verify and store one chunk sent by `org`; returns its SHA-1 and its uncompressed bytes."""
        sha1 = check_sha1(name)
        t0 = time.perf_counter()
        data = gunzip_capped(body, self.chunk_size) if gzipped else body
        t1 = time.perf_counter()
        self.observe("chunk_gunzip", t1 - t0, len(data))
        if len(data) > self.chunk_size:
            raise ChunkError(f"chunk size too large: {len(data)} bytes, the limit is {self.chunk_size}")
        actual = hashlib.sha1(data).hexdigest()
        t2 = time.perf_counter()
        self.observe("chunk_sha1", t2 - t1, len(data))
        if actual != sha1:
            raise ChunkError(f"chunk checksum mismatch: named {sha1}, content has SHA-1 {actual}")
        if self.storage.head(keys.chunk(sha1)) is None:
            self.storage.put_bytes(keys.chunk(sha1), data)
        owner = {"size": len(data), "head": bytes(data[:HEAD_BYTES]).hex()}
        self.storage.put_bytes(keys.chunk_owner(org, sha1), json.dumps(owner).encode())
        self.observe("chunk_put", time.perf_counter() - t2, len(data))
        return sha1, data

    def head(self, org: Scope, sha1: str) -> tuple[bytes, int] | None:
        """The first bytes and the size of a chunk `org` sent (from its owner marker), None if it sent none."""
        try:
            marker = json.loads(self.storage.get_bytes(keys.chunk_owner(org, check_sha1(sha1)), max_bytes=4096))
            return bytes.fromhex(marker["head"]), int(marker["size"])
        except ObjectNotFound:
            return None
        except (ValueError, KeyError, TypeError):  # not a marker this code wrote: read the chunk itself
            data = self.storage.get_bytes(keys.chunk(sha1), max_bytes=self.chunk_size)
            return data[:HEAD_BYTES], len(data)

    def total_size(self, sha1s: Sequence[str]) -> int:
        """The size of the file these stored chunks make."""
        sizes = [self.storage.head(keys.chunk(check_sha1(s))) for s in sha1s]
        return sum(info.size for info in sizes if info is not None)

    def missing(self, org: Scope, sha1s: Iterable[str]) -> list[str]:
        """The chunks of `sha1s` that `org` has not sent (or whose bytes are gone), in first-seen order, each once."""
        wanted = list(dict.fromkeys(check_sha1(s) for s in sha1s))

        def present(sha1: str) -> bool:
            return (self.storage.head(keys.chunk_owner(org, sha1)) is not None
                    and self.storage.head(keys.chunk(sha1)) is not None)

        if len(wanted) <= 4:
            found = [present(s) for s in wanted]
        else:
            with ThreadPoolExecutor(max_workers=8) as pool:
                found = list(pool.map(present, wanted))
        return [s for s, ok in zip(wanted, found, strict=False) if not ok]

    def concatenate(self, sha1s: Sequence[str], dest: Path, prefetch: int = 3) -> tuple[str, int]:
        """Write the chunks in order into `dest`; returns the SHA-1 and size of the whole.

        Up to `prefetch` chunks are fetched ahead while the current one is
        hashed and written, so memory stays at a few chunks for a file of any size.
        """
        digest = hashlib.sha1()
        size = 0
        names = [check_sha1(s) for s in sha1s]

        def fetch(sha1: str) -> tuple[bytes, float]:
            t0 = time.perf_counter()
            try:
                data = self.storage.get_bytes(keys.chunk(sha1), max_bytes=self.chunk_size)
            except ObjectNotFound:
                raise MissingChunk(sha1) from None
            return data, time.perf_counter() - t0

        with open(dest, "wb") as out, ThreadPoolExecutor(max_workers=prefetch) as pool:
            pending: deque[Future[tuple[bytes, float]]] = deque()
            queue = iter(names)
            for sha1 in queue:
                pending.append(pool.submit(fetch, sha1))
                if len(pending) >= prefetch:
                    break
            while pending:
                data, fetch_s = pending.popleft().result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending.append(pool.submit(fetch, nxt))
                t1 = time.perf_counter()
                digest.update(data)
                out.write(data)
                self.observe("assemble_get", fetch_s, len(data))
                self.observe("assemble_hash_write", time.perf_counter() - t1, len(data))
                size += len(data)
        return digest.hexdigest(), size
