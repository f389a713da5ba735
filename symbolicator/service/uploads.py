"""The chunked upload protocol of sentry-cli: chunks in, assemble, states out.

States follow sentry-cli's reading: `not_found` + `missingChunks` (upload
these), `created` / `assembling` (poll), `ok` (+ `dif`), `error` (+ `detail`).

Only *terminal* states are persisted (`keys.assemble_state`, and for artifact
bundles `keys.bundle_assemble_state`, one per release and dist), after
the files and indexes they announce: a state read from storage is always true,
on every instance and after a restart. Work in progress lives in this process
only; if it dies (SIGKILL, deploy), nothing claims the file is done, and the
client's retry assembles again from the stored chunks. Failures that are not the
file's fault (storage down, a bug) are kept in memory briefly and never
persisted, so a retry is not blocked by a stale "error".

An org assembles only chunks it sent itself (`ChunkStore`). The `not_found` answer
opens a pipeline for the file (`artifacts.pipeline`): the chunks that follow are
laid out and hashed as they arrive, so the assemble call after the last one only
identifies and publishes. A file whose first bytes show it cannot be taken is
refused on that call already, so a client that does not poll still hears it.

Assembling runs on a small dedicated thread pool: it is I/O and hashing (both
release the GIL), and must not crowd the default pool symbolication uses.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from symbolicator import keys
from symbolicator.artifacts import artifact_bundles, bundle_archive, debug_files
from symbolicator.artifacts.chunks import ChunkStore, check_sha1
from symbolicator.artifacts.pipeline import FilePipeline, PartCopier, Pipelines, StartCompose, elf_build_id
from symbolicator.config import Settings
from symbolicator.errors import (
    Abandoned,
    AssembleState,
    FormatError,
    InvalidShape,
    MissingChunk,
    ObjectNotFound,
    StorageError,
)
from symbolicator.metrics import Metrics
from symbolicator.native import objects
from symbolicator.storage.base import Storage
from symbolicator.storage.s3 import MIN_PART_BYTES
from symbolicator.types import CodeId, ObjectKind, Scope

T = TypeVar("T")

log = logging.getLogger(__name__)

ACCEPT = ["debug_files", "release_files", "pdbs", "sources", "artifact_bundles", "artifact_bundles_v2"]
"""What the service takes (ELF, Mach-O, PE and PDB, source bundles, JS artifact bundles), no more: sentry-cli 2.x
reads this list (without `pdbs` it skips PE and PDB files). `release_files` because 2.x uploads artifact bundles
only when it is there (else it falls back to the per-file release API, which the service does not have)."""
CHUNKS_PER_REQUEST = 64
TRANSIENT_TTL_S = 600.0
Publish = Callable[[Path, "PartCopier | None"], dict[str, Any]]


@dataclass(frozen=True)
class DifRequest:
    sha1: str
    name: str
    chunks: tuple[str, ...]


def parse_dif_assemble(body: Any, max_chunks: int) -> list[DifRequest]:
    if not isinstance(body, dict):
        raise InvalidShape("expected an object mapping file SHA-1 to {name, chunks}")
    out = []
    for sha1, entry in body.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("chunks", []), list):
            raise InvalidShape(f"{sha1}: expected {{name, debug_id?, chunks: [sha1, …]}}")
        chunks = tuple(check_sha1(str(c)) for c in entry.get("chunks", []))
        if len(chunks) > max_chunks:
            raise InvalidShape(f"{sha1}: {len(chunks)} chunks is more than the largest file allowed")
        name = entry.get("name")
        out.append(DifRequest(check_sha1(sha1), name if isinstance(name, str) and name else sha1, chunks))
    return out


def state_json(state: AssembleState, missing: list[str] | None = None, detail: str | None = None,
               **extra: Any) -> dict[str, Any]:
    return {"state": state.value, "missingChunks": missing or [], "detail": detail, **extra}


class UploadService:
    def __init__(self, settings: Settings, storage: Storage, metrics: Metrics, work_dir: Path) -> None:
        self.settings = settings
        self.storage = storage
        self.metrics = metrics
        self.chunks = ChunkStore(storage, settings.limits.chunk_size, metrics.observe_phase)
        self.work_dir = work_dir
        shutil.rmtree(work_dir, ignore_errors=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        self.pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="assemble")
        self.pipelines = Pipelines(self.chunks, work_dir)
        self._running: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._transient: dict[str, tuple[float, dict[str, Any]]] = {}

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pipelines.close()

    @property
    def max_chunks(self) -> int:
        return self.settings.limits.max_file_bytes // self.settings.limits.chunk_size + 1

    def options(self, url: str) -> dict[str, Any]:
        size = self.settings.limits.chunk_size
        return {
            "url": url,
            "chunkSize": size,
            "chunksPerRequest": CHUNKS_PER_REQUEST,
            "maxFileSize": self.settings.limits.max_file_bytes,
            "maxRequestSize": max(4 * size, 32 * 1024 * 1024),
            "concurrency": 4,
            "hashAlgorithm": "sha1",
            "compression": ["gzip"],
            "accept": ACCEPT,
        }

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)

    async def store_chunk(self, org: Scope, name: str, body: bytes | bytearray, gzipped: bool) -> int:
        size: int = await self._run(self._store_chunk, org, name, body, gzipped)
        self.metrics.chunks_received.inc()
        self.metrics.chunk_bytes_received.inc(size)
        return size

    def _store_chunk(self, org: Scope, name: str, body: bytes | bytearray, gzipped: bool) -> int:
        sha1, data = self.chunks.put(org, name, body, gzipped)
        t0 = time.perf_counter()
        fed = self.pipelines.feed(org, sha1, data)
        if fed:
            self.metrics.observe_phase("pipeline_feed", time.perf_counter() - t0, len(data) * fed)
        return len(data)

    async def assemble_difs(self, org: Scope, scope: Scope, files: list[DifRequest]) -> dict[str, Any]:
        """`org` is the organization the request was addressed to: it may only assemble chunks it sent."""
        def one(f: DifRequest) -> Awaitable[dict[str, Any]]:
            def publish(path: Path, copier: PartCopier | None) -> dict[str, Any]:
                return self._publish_dif(scope, path, f.sha1, f.name, [keys.chunk(c) for c in f.chunks], copier)

            return self._assemble(f"dif:{scope}:{f.sha1}", org, [scope], f.sha1, f.chunks, publish, "debug_file",
                                  partial(keys.assemble_state, file_sha1=f.sha1), objects.check_magic,
                                  self._compose_at(scope))

        answers = await asyncio.gather(*(one(f) for f in files))
        return {f.sha1: a for f, a in zip(files, answers, strict=False)}

    async def assemble_bundle(self, org: Scope, scopes: list[Scope], checksum: str, chunks: list[str],
                              release: str | None, dist: str | None) -> dict[str, Any]:
        sha1 = check_sha1(checksum)
        chunk_ids = tuple(check_sha1(str(c)) for c in chunks)
        key = f"bundle:{','.join(sorted(map(str, scopes)))}:{sha1}:{release}:{dist}"
        return await self._assemble(key, org, scopes, sha1, chunk_ids,
                                    lambda path, copier: self._publish_bundle(scopes, path, sha1, release, dist),
                                    "artifact_bundle", lambda s: keys.bundle_assemble_state(s, sha1, release, dist),
                                    bundle_archive.check_magic)

    async def _assemble(self, task_key: str, org: Scope, scopes: list[Scope], sha1: str, chunks: tuple[str, ...],
                        publish: Publish, kind: str, state_key: Callable[[Scope], str],
                        check_head: Callable[[bytes, int], None],
                        start_compose: StartCompose | None = None) -> dict[str, Any]:
        """`check_head(first bytes, size)` raises FormatError for a file that cannot be taken: the client hears it
        in the answer to the assemble call that follows its last chunk, not only when it polls (sentry-cli 3.x
        polls only with --wait, and would print UPLOADED for a file stored as an error)."""
        done = await self._run(self._load_state, [state_key(s) for s in scopes])
        if done is not None:
            return done
        running = self._running.get(task_key)
        if running is not None:
            return state_json(AssembleState.ASSEMBLING)
        transient = self._transient.pop(task_key, None)
        if transient is not None and transient[0] > time.monotonic():
            return transient[1]
        if not chunks:
            return state_json(AssembleState.NOT_FOUND)
        missing = await self._run(self._missing, org, sha1, chunks)
        if missing:
            await self._run(self.pipelines.open, org, sha1, chunks, start_compose)
            return state_json(AssembleState.NOT_FOUND, missing)
        refused = await self._run(self._check_head, org, chunks, check_head)
        if refused is not None:
            await self._run(self._persist, scopes, state_key, refused)
            self.metrics.uploads.labels(kind, refused["state"]).inc()
            return refused
        future = asyncio.ensure_future(self._run(self._assemble_sync, org, scopes, sha1, chunks, publish, kind,
                                                 state_key))
        self._running[task_key] = future
        self.metrics.assembling.inc()
        future.add_done_callback(lambda fut: self._finished(task_key, fut))
        return state_json(AssembleState.CREATED)

    def _finished(self, task_key: str, future: asyncio.Future[dict[str, Any]]) -> None:
        self._running.pop(task_key, None)
        self.metrics.assembling.dec()
        if future.cancelled():
            return
        exc = future.exception()
        if exc is not None:
            log.error("assemble %s failed", task_key, exc_info=exc)
            answer = state_json(AssembleState.ERROR, detail="internal error while assembling; retry the upload")
            self._transient[task_key] = (time.monotonic() + TRANSIENT_TTL_S, answer)
            return
        answer = future.result()
        if answer["state"] == AssembleState.ERROR.value and not answer.get("persisted"):
            self._transient[task_key] = (time.monotonic() + TRANSIENT_TTL_S, answer)

    def _missing(self, org: Scope, sha1: str, chunks: tuple[str, ...]) -> list[str]:
        held = self.pipelines.received(org, sha1, chunks)  # fed by this org after they were stored: no need to ask
        return self.chunks.missing(org, [c for c in chunks if c not in held])

    def _finish_pipeline(self, pipe: FilePipeline) -> tuple[str, int]:
        """The SHA-1 and size of the file the pipeline laid out; ("", 0) to assemble the plain way instead."""
        t0 = time.perf_counter()
        try:
            actual, size = pipe.finish()
        except Abandoned as exc:
            log.info("pipelined assembly of %s abandoned: %s", pipe.sha1, exc)
            return "", 0
        self.metrics.observe_phase("pipeline_finish", time.perf_counter() - t0, size)
        return actual, size

    def _compose_at(self, scope: Scope) -> StartCompose | None:
        """Where a debug file will be stored, from its first chunk (an ELF build-id), as a pipelined compose; None
        where the storage cannot compose part by part or the chunks are below S3's part minimum."""
        start = getattr(self.storage, "start_compose", None)
        if start is None or self.settings.limits.chunk_size < MIN_PART_BYTES:
            return None

        def start_compose(head: bytes) -> PartCopier | None:
            build_id = elf_build_id(head)
            if build_id is None:
                return None
            copier: PartCopier = start(keys.debug_file(scope, CodeId(build_id.hex()), ObjectKind.DEBUGINFO))
            return copier

        return start_compose

    def _check_head(self, org: Scope, chunks: tuple[str, ...],
                    check_head: Callable[[bytes, int], None]) -> dict[str, Any] | None:
        """The `error` answer for a file whose first bytes show it cannot be taken; None when it may be."""
        head = self.chunks.head(org, chunks[0])
        if head is None:  # gone since `missing`: assembling will say so
            return None
        try:
            check_head(head[0], head[1] if len(chunks) == 1 else self.chunks.total_size(chunks))
        except FormatError as exc:
            return state_json(AssembleState.ERROR, detail=str(exc))
        return None

    def _persist(self, scopes: list[Scope], state_key: Callable[[Scope], str], answer: dict[str, Any]) -> None:
        for scope in scopes:
            self.storage.put_bytes(state_key(scope), json.dumps(answer).encode())

    def _load_state(self, state_keys: list[str]) -> dict[str, Any] | None:
        states = []
        for key in state_keys:
            try:
                states.append(json.loads(self.storage.get_bytes(key, 1 << 20)))
            except ObjectNotFound:
                return None
        return states[0] if all(s.get("state") == states[0].get("state") for s in states) else None

    def _assemble_sync(self, org: Scope, scopes: list[Scope], sha1: str, chunks: tuple[str, ...],
                       publish: Publish, kind: str, state_key: Callable[[Scope], str]) -> dict[str, Any]:
        started = time.monotonic()
        pipe = self.pipelines.take(org, sha1, chunks)
        with tempfile.TemporaryDirectory(dir=self.work_dir) as tmp:
            path = Path(tmp) / "file"
            copier: PartCopier | None = None
            try:
                actual, size = self._finish_pipeline(pipe) if pipe is not None else ("", 0)
                if actual == sha1 and pipe is not None:
                    path, copier = pipe.path, pipe.copier
                else:
                    actual, size = self.chunks.concatenate(chunks, path)
                if actual != sha1:
                    damaged = self._drop_damaged_chunks(chunks)
                    if damaged:
                        return state_json(AssembleState.ERROR, detail=(
                            f"{len(damaged)} stored chunk(s) did not match their SHA-1 and were dropped "
                            f"({', '.join(damaged[:3])}); upload the file again"))
                    return state_json(AssembleState.ERROR, detail=(
                        f"checksum mismatch: the chunks make a file with SHA-1 {actual}, not {sha1}"))
                t0 = time.monotonic()
                extra = publish(path, copier)
                if copier is not None and copier.completed:
                    self.metrics.observe_phase("pipeline_compose", time.monotonic() - t0, size)
                self.metrics.observe_phase("publish", time.monotonic() - t0, size)
                answer = state_json(AssembleState.OK, **extra)
            except MissingChunk as exc:
                return state_json(AssembleState.ERROR, detail=f"{exc}; upload it again")
            except FormatError as exc:
                answer = state_json(AssembleState.ERROR, detail=str(exc))
            except StorageError as exc:
                log.warning("assemble %s: storage failed: %s", sha1, exc)
                self.metrics.uploads.labels(kind, "failed").inc()
                return state_json(AssembleState.ERROR, detail=f"storage unavailable: {exc}; retry the upload")
            finally:
                if pipe is not None:
                    pipe.close()
        self._persist(scopes, state_key, answer)
        self.metrics.uploads.labels(kind, answer["state"]).inc()
        if answer["state"] == "ok":
            self.metrics.bytes_stored.labels(kind).inc(size)
        log.info("assembled %s %s in %s: %s (%.2f s)", kind, sha1, ",".join(map(str, scopes)), answer["state"],
                 time.monotonic() - started)
        return {**answer, "persisted": True}

    def _drop_damaged_chunks(self, chunks: tuple[str, ...]) -> list[str]:
        """Chunks whose stored bytes are not what their name says, deleted so the next upload sends them again.

        Chunks are trusted once stored (`missing` only asks whether they exist), so a
        chunk damaged in storage, such as the empty object a store kept from a writer
        killed mid-request, would otherwise fail every later upload of the file.
        """
        damaged = []
        for sha1 in dict.fromkeys(chunks):
            key = keys.chunk(sha1)
            try:
                data = self.storage.get_bytes(key, max_bytes=self.settings.limits.chunk_size)
            except ObjectNotFound:
                continue
            if hashlib.sha1(data).hexdigest() != sha1:
                log.warning("chunk %s is damaged in storage (%d bytes); dropping it", sha1, len(data))
                self.storage.delete(key)
                damaged.append(sha1)
        return damaged

    def _publish_dif(self, scope: Scope, path: Path, sha1: str, name: str,
                     stored_parts: list[str] | None = None, copier: PartCopier | None = None) -> dict[str, Any]:
        limits = self.settings.limits
        published = debug_files.publish(self.storage, scope, path, sha1, name, self.work_dir,
                                        limits.max_bundle_entries, limits.max_bundle_uncompressed_bytes,
                                        stored_parts or (), copier)
        return {"dif": debug_files.dif_json(published, sha1, name)}

    def _publish_bundle(self, scopes: list[Scope], path: Path, sha1: str, release: str | None,
                        dist: str | None) -> dict[str, Any]:
        limits = self.settings.limits
        summary = artifact_bundles.publish(self.storage, scopes, path, sha1, release, dist,
                                           limits.max_bundle_entries, limits.max_bundle_uncompressed_bytes)
        return {"bundle": {"files": summary.files, "debug_ids": summary.debug_ids,
                           "release_urls": summary.release_urls, "debug_id": summary.bundle_debug_id}}

    async def upload_file(self, scope: Scope, path: Path, name: str) -> dict[str, Any]:
        """The single-request upload (`curl -F file=@…`): the file is already on disk."""

        def work() -> dict[str, Any]:
            digest = hashlib.sha1()
            with open(path, "rb") as f:
                while block := f.read(1 << 20):
                    digest.update(block)
            sha1 = digest.hexdigest()
            answer: dict[str, Any] = self._publish_dif(scope, path, sha1, name)["dif"]
            self.storage.put_bytes(keys.assemble_state(scope, sha1),
                                   json.dumps(state_json(AssembleState.OK, dif=answer)).encode())
            return answer

        try:
            result: dict[str, Any] = await self._run(work)
        except FormatError:
            self.metrics.uploads.labels("debug_file", "error").inc()
            raise
        self.metrics.uploads.labels("debug_file", "ok").inc()
        return result
