"""Pipelined assembly: hash and lay out a file while its chunks arrive, so assembling after the last one costs little.

sentry-cli's first assemble call names every chunk of the file before it sends
any (docs/uploads.md). The upload service then opens a `FilePipeline` for the file;
each chunk the same org sends is written at its place in a sparse temporary file
(`chunk index × chunk size`: sentry-cli cuts every chunk but the last to the
advertised size) and the file's SHA-1 advances over the chunks received in order.
Once the last chunk is in, the file is already on local disk and hashed, and the
assemble call that follows only identifies and publishes it.

On S3 the stored debug file is then composed from the chunk objects (a server-side
copy of every byte). The pipeline starts that copy as the chunks arrive, into a
multipart upload at the key the first chunk announces (an ELF's build-id note);
publishing completes the upload (no byte moves) if identification agrees, else
aborts it and composes as before.

Nothing here is trusted: the SHA-1 must match, a chunk of the wrong size or a
guessed key that proves wrong falls back to the plain path
(`ChunkStore.concatenate`), and chunks the pipeline did not see (sent before it
opened, or through another instance) are read from storage at the end. Memory
stays at one chunk per upload thread; the temporary file is removed when the
pipeline finishes, fails or expires.
"""

from __future__ import annotations

import hashlib
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from symbolicator import keys
from symbolicator.artifacts.chunks import ChunkStore
from symbolicator.errors import Abandoned, MissingChunk, ObjectNotFound

log = logging.getLogger(__name__)

PT_NOTE = 4
NT_GNU_BUILD_ID = 3


class PartCopier(Protocol):
    """A multipart upload at one key, filled by server-side copies of stored objects (`S3Storage.start_compose`)."""

    key: str
    completed: bool

    def copy(self, number: int, source: str) -> None: ...

    def complete(self, count: int) -> bool: ...

    def abort(self) -> None: ...


StartCompose = Callable[[bytes], "PartCopier | None"]
"""Given the first chunk, a copier to the key the file will be stored at, or None (unknown, or not worth it)."""


def elf_build_id(head: bytes) -> bytes | None:
    """The GNU build-id from the PT_NOTE segments that lie within `head` (an ELF file's first bytes), if any."""
    if head[:4] != b"\x7fELF" or len(head) < 64 or head[4] not in (1, 2) or head[5] not in (1, 2):
        return None
    is64, e = head[4] == 2, "<" if head[5] == 1 else ">"
    if is64:
        phoff, phentsize, phnum = struct.unpack_from(f"{e}Q", head, 0x20)[0], *struct.unpack_from(f"{e}HH", head, 0x36)
    else:
        phoff, phentsize, phnum = struct.unpack_from(f"{e}I", head, 0x1C)[0], *struct.unpack_from(f"{e}HH", head, 0x2A)
    for n in range(min(phnum, 256)):
        at = phoff + n * phentsize
        if at + (56 if is64 else 32) > len(head):
            return None
        if struct.unpack_from(f"{e}I", head, at)[0] != PT_NOTE:
            continue
        if is64:
            offset, size = struct.unpack_from(f"{e}Q", head, at + 8)[0], struct.unpack_from(f"{e}Q", head, at + 32)[0]
        else:
            offset, size = struct.unpack_from(f"{e}I", head, at + 4)[0], struct.unpack_from(f"{e}I", head, at + 16)[0]
        pos, end = offset, min(offset + size, len(head))
        while pos + 12 <= end:
            namesz, descsz, kind = struct.unpack_from(f"{e}III", head, pos)
            name_at = pos + 12
            desc_at = name_at + (namesz + 3) // 4 * 4
            if kind == NT_GNU_BUILD_ID and head[name_at:name_at + namesz] == b"GNU\0" and desc_at + descsz <= end:
                return head[desc_at:desc_at + descsz] or None
            pos = desc_at + (descsz + 3) // 4 * 4
    return None


class FilePipeline:
    """One file of one org, assembled as its chunks arrive. Thread-safe; `feed` is called from upload threads."""

    def __init__(self, store: ChunkStore, sha1: str, chunks: Sequence[str], work_dir: Path,
                 start_compose: StartCompose | None = None) -> None:
        self.store = store
        self.sha1 = sha1
        self.chunks = tuple(chunks)
        self.size = store.chunk_size
        self.path = work_dir / f"pipe-{sha1}-{uuid.uuid4().hex[:8]}"
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
        self._positions: dict[str, list[int]] = {}
        for i, c in enumerate(self.chunks):
            self._positions.setdefault(c, []).append(i)
        self._received = [False] * len(self.chunks)
        self._lengths = [0] * len(self.chunks)
        self._hash = hashlib.sha1()
        self._cursor = 0
        self._lock = threading.Lock()
        self._start_compose = start_compose
        self.copier: PartCopier | None = None
        self.broken: str | None = None
        self.closed = False
        self.touched = time.monotonic()

    def wants(self, chunk_sha1: str) -> bool:
        return chunk_sha1 in self._positions

    def received(self) -> set[str]:
        """The chunks this pipeline holds: sent by its org and stored, so `missing` need not ask storage."""
        with self._lock:
            if self.broken or self.closed:
                return set()
            return {c for c, got in zip(self.chunks, self._received, strict=False) if got}

    def feed(self, chunk_sha1: str, data: bytes | bytearray) -> None:
        """A verified chunk of this file arrived (and is stored): write it at each place it occupies."""
        with self._lock:
            self.touched = time.monotonic()
            if self.closed or self.broken:
                return
            for i in self._positions.get(chunk_sha1, ()):
                if not self._received[i]:
                    self._place(i, data)
            self._advance(chunk_sha1, data)

    def _place(self, i: int, data: bytes | bytearray) -> None:
        if len(data) != self.size and i != len(self.chunks) - 1 or len(data) > self.size:
            self.broken = f"chunk {i} has {len(data)} bytes, not the chunk size {self.size}"
            return
        os.pwrite(self._fd, data, i * self.size)
        self._received[i] = True
        self._lengths[i] = len(data)
        if i == 0 and self._start_compose is not None:
            try:
                self.copier = self._start_compose(bytes(data[:64 * 1024]))
            except Exception as exc:  # noqa: BLE001 (an optimisation only: publishing composes as before)
                log.warning("pipelined compose of %s not started: %s", self.sha1, exc)
            if self.copier is not None:
                for j, got in enumerate(self._received):
                    if got:
                        self._copy(j)
        elif self.copier is not None:
            self._copy(i)

    def _copy(self, i: int) -> None:
        assert self.copier is not None
        try:
            self.copier.copy(i + 1, keys.chunk(self.chunks[i]))
        except Exception as exc:  # noqa: BLE001 (as above)
            log.warning("pipelined compose of %s stopped: %s", self.sha1, exc)
            self.copier.abort()
            self.copier = None

    def _advance(self, chunk_sha1: str | None = None, data: bytes | bytearray | None = None) -> None:
        while self._cursor < len(self._received) and self._received[self._cursor]:
            i = self._cursor
            block = data if self.chunks[i] == chunk_sha1 and data is not None else \
                os.pread(self._fd, self._lengths[i], i * self.size)
            self._hash.update(block)
            self._cursor += 1

    def finish(self) -> tuple[str, int]:
        """Blocking: fill in the chunks not seen (from storage), then the file's SHA-1 and size."""
        with self._lock:
            if self.broken:
                raise Abandoned(self.broken)
            self.touched = time.monotonic()
            for i, got in enumerate(self._received):
                if not got:
                    try:
                        data = self.store.storage.get_bytes(keys.chunk(self.chunks[i]), max_bytes=self.size)
                    except ObjectNotFound:
                        raise MissingChunk(self.chunks[i]) from None
                    self._place(i, data)
                    if self.broken:
                        raise Abandoned(self.broken)
            self._advance()
            os.ftruncate(self._fd, sum(self._lengths))
            return self._hash.hexdigest(), sum(self._lengths)

    def close(self, keep_copier: bool = False) -> None:
        with self._lock:
            if self.closed:
                return
            self.closed = True
            os.close(self._fd)
            self.path.unlink(missing_ok=True)
            if self.copier is not None and not keep_copier:
                self.copier.abort()
                self.copier = None


MAX_OPEN = 16
"""Pipelines open at once in one process; a file beyond them is assembled the plain way."""
IDLE_S = 900.0
"""A pipeline no chunk or call has touched for this long is dropped (its client gave up)."""


class Pipelines:
    """This process's open pipelines, by org and file SHA-1: a chunk feeds only the pipelines of the org that sent it
    (`ChunkStore`'s ownership rule), and assembling takes the pipeline of its own org."""

    def __init__(self, store: ChunkStore, work_dir: Path) -> None:
        self.store = store
        self.work_dir = work_dir
        self._open: dict[tuple[str, str], FilePipeline] = {}
        self._lock = threading.Lock()

    def open(self, org: object, sha1: str, chunks: Sequence[str], start_compose: StartCompose | None) -> None:
        """Blocking: open a pipeline for the file unless one is open (or it is one chunk, or too many are open)."""
        self.expire()
        if len(chunks) < 2:
            return
        key = (str(org), sha1)
        with self._lock:
            old = self._open.get(key)
            if old is not None and old.chunks == tuple(chunks) and not old.closed:
                old.touched = time.monotonic()
                return
            if old is None and len(self._open) >= MAX_OPEN:
                return
            self._open[key] = FilePipeline(self.store, sha1, chunks, self.work_dir, start_compose)
        if old is not None:
            old.close()

    def feed(self, org: object, chunk_sha1: str, data: bytes | bytearray) -> int:
        """Blocking: hand a stored chunk to the org's pipelines that want it; how many took it."""
        with self._lock:
            pipes = [p for (o, _), p in self._open.items() if o == str(org) and p.wants(chunk_sha1)]
        for pipe in pipes:
            pipe.feed(chunk_sha1, data)
        return len(pipes)

    def received(self, org: object, sha1: str, chunks: Sequence[str]) -> set[str]:
        """The chunks of the file that its open pipeline already holds (none if there is no such pipeline)."""
        with self._lock:
            pipe = self._open.get((str(org), sha1))
        return pipe.received() if pipe is not None and pipe.chunks == tuple(chunks) else set()

    def take(self, org: object, sha1: str, chunks: Sequence[str]) -> FilePipeline | None:
        """The file's pipeline, now the caller's to finish and close; None if there is none for these chunks."""
        with self._lock:
            pipe = self._open.pop((str(org), sha1), None)
        if pipe is not None and pipe.chunks != tuple(chunks):
            pipe.close()
            return None
        return pipe

    def expire(self) -> None:
        now = time.monotonic()
        with self._lock:
            stale = [self._open.pop(k) for k, p in list(self._open.items()) if now - p.touched > IDLE_S]
        for pipe in stale:
            pipe.close()

    def close(self) -> None:
        with self._lock:
            pipes = list(self._open.values())
            self._open.clear()
        for pipe in pipes:
            pipe.close()
