"""`IndexReader`: indexes answered from memory only while the store vouches for them.

Every upload must be seen by the next request, also one made through another
process or instance, so the memory is checked against the storage's `version`
of the object and never trusted by time. S3 cannot vouch for an object without
a request, so there the memory is checked against the scope's generation
marker, which every change to the scope's indexes rewrites (`mark_changed`)
and a request reads once (`ScopeIndexes`); without it, every read goes to the
store.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from symbolicator import keys
from symbolicator.artifacts import indexes
from symbolicator.artifacts.indexes import NOT_REMEMBERED, IndexReader
from symbolicator.service.stored_files import ScopeIndexes
from symbolicator.storage.base import ABSENT, Storage
from symbolicator.storage.local import LocalStorage
from symbolicator.storage.outage import OutageGuard
from symbolicator.storage.s3 import S3Storage
from symbolicator.types import Scope

SCOPE = Scope.parse("acme/web")
KEY = f"index/{SCOPE}/debug-id/abc.json"


class CountingStorage:
    """A storage that counts `get_bytes` calls: the reads that really reached the store."""

    def __init__(self, backend: Storage) -> None:
        self.backend = backend
        self.reads = 0
        self.keys_read: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        self.reads += 1
        self.keys_read.append(key)
        return self.backend.get_bytes(key, max_bytes)


def put(storage: Storage, value: dict[str, Any]) -> None:
    storage.put_bytes(KEY, json.dumps(value).encode())


@pytest.fixture
def local(tmp_path: Path) -> Iterator[CountingStorage]:
    yield CountingStorage(OutageGuard(LocalStorage(tmp_path / "uploads")))


def test_local_version_changes_with_every_publish_and_delete(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "uploads")
    assert storage.version(KEY) == ABSENT
    put(storage, {"a": 1})
    first = storage.version(KEY)
    put(storage, {"a": 1})  # same bytes, same size: a new object all the same
    second = storage.version(KEY)
    storage.delete(KEY)
    assert len({first, second, ABSENT, storage.version(KEY)}) == 3
    assert first != second and storage.version(KEY) == ABSENT


def test_remembered_answer_needs_no_read_until_the_object_changes(local: CountingStorage) -> None:
    reader = IndexReader(local)  # type: ignore[arg-type]
    assert reader.remembered(KEY) is NOT_REMEMBERED
    assert reader.read(KEY) is None
    assert reader.remembered(KEY) is None  # "no such index" is remembered too, checked the same way
    put(local, {"files": ["one"]})
    assert reader.remembered(KEY) is NOT_REMEMBERED  # an upload is seen at the next request
    reads = local.reads
    assert reader.read(KEY) == {"files": ["one"]}
    for _ in range(100):
        assert reader.remembered(KEY) == {"files": ["one"]}
    assert local.reads == reads + 1
    put(local, {"files": ["one", "two"]})
    assert reader.remembered(KEY) is NOT_REMEMBERED
    assert reader.read(KEY) == {"files": ["one", "two"]}
    local.delete(KEY)
    assert reader.remembered(KEY) is NOT_REMEMBERED
    assert reader.read(KEY) is None


def test_an_upload_by_another_process_is_seen(tmp_path: Path) -> None:
    """Another instance on the same folder writes the index: no notification reaches this reader."""
    reader = IndexReader(LocalStorage(tmp_path / "uploads"))
    assert reader.read(KEY) is None
    other = LocalStorage(tmp_path / "uploads")
    put(other, {"files": ["theirs"]})
    assert reader.remembered(KEY) is NOT_REMEMBERED
    assert reader.read(KEY) == {"files": ["theirs"]}


def test_first_remembered_stops_at_the_first_unknown_key(local: CountingStorage) -> None:
    reader = IndexReader(local)  # type: ignore[arg-type]
    candidates = [f"index/{SCOPE}/debug-id/a.json", KEY]
    put(local, {"found": True})
    assert reader.first_remembered(candidates) is NOT_REMEMBERED
    assert reader.first(candidates) == {"found": True}
    assert reader.first_remembered(candidates) == {"found": True}
    local.put_bytes(candidates[0], b'{"earlier": true}')  # an earlier candidate appears: it wins from now on
    assert reader.first_remembered(candidates) is NOT_REMEMBERED
    assert reader.first(candidates) == {"earlier": True}


def test_memory_is_bounded_by_bytes(local: CountingStorage) -> None:
    reader = IndexReader(local, max_bytes=4096)  # type: ignore[arg-type]
    many = [f"index/{SCOPE}/debug-id/{i}.json" for i in range(50)]
    for key in many:
        local.put_bytes(key, json.dumps({"pad": "x" * 200}).encode())
        reader.read(key)
    known = [k for k in many if reader.remembered(k) is not NOT_REMEMBERED]
    assert 0 < len(known) < len(many) and known == many[-len(known):]  # the newest stay


def test_a_large_index_is_never_remembered(local: CountingStorage) -> None:
    reader = IndexReader(local)  # type: ignore[arg-type]
    put(local, {"pad": "x" * (128 * 1024)})
    assert reader.read(KEY) is not None
    assert reader.remembered(KEY) is NOT_REMEMBERED


@pytest.mark.s3
def test_s3_cannot_vouch_so_without_a_generation_every_read_reaches_the_store(s3_storage: S3Storage) -> None:
    storage = CountingStorage(OutageGuard(s3_storage))
    reader = IndexReader(storage)  # type: ignore[arg-type]
    assert reader.needs_generation and not IndexReader(LocalStorage(Path("/nonexistent"))).needs_generation
    put(storage, {"files": ["one"]})
    assert s3_storage.version(KEY) is None
    assert reader.read(KEY) == {"files": ["one"]}
    assert reader.remembered(KEY) is NOT_REMEMBERED
    put(storage, {"files": ["two"]})
    assert reader.read(KEY) == {"files": ["two"]}
    assert storage.reads == 2


@pytest.mark.s3
def test_s3_indexes_are_remembered_while_the_scope_generation_is_unchanged(s3_storage: S3Storage) -> None:
    """Another instance writes through its own storage object: only the marker tells this reader."""
    storage = CountingStorage(OutageGuard(s3_storage))
    reader = IndexReader(storage)  # type: ignore[arg-type]
    before = reader.generation(SCOPE)
    assert before == ABSENT  # nothing uploaded yet: the marker does not exist
    assert reader.read(KEY, before) is None
    assert reader.remembered(KEY, before) is None  # "no such index" is remembered too

    put(s3_storage, {"files": ["one"]})  # another instance's upload, then its marker
    indexes.mark_changed(s3_storage, SCOPE)
    assert reader.remembered(KEY, before) is None  # a request that read the marker before still sees the old state
    first = reader.generation(SCOPE)
    assert first != before
    assert reader.remembered(KEY, first) is NOT_REMEMBERED
    assert reader.read(KEY, first) == {"files": ["one"]}
    reads = storage.reads
    for _ in range(20):
        same = reader.generation(SCOPE)  # what each later request reads: the marker alone
        assert reader.remembered(KEY, same) == {"files": ["one"]}
    assert storage.keys_read[reads:] == [keys.index_generation(SCOPE)] * 20

    put(s3_storage, {"files": ["one", "two"]})
    indexes.mark_changed(s3_storage, SCOPE)
    second = reader.generation(SCOPE)
    assert second not in (first, before)
    assert reader.remembered(KEY, second) is NOT_REMEMBERED
    assert reader.read(KEY, second) == {"files": ["one", "two"]}


@pytest.mark.s3
async def test_one_request_reads_the_generation_marker_once(s3_storage: S3Storage) -> None:
    storage = CountingStorage(OutageGuard(s3_storage))
    reader = IndexReader(storage)  # type: ignore[arg-type]
    many = [f"index/{SCOPE}/debug-id/{i}.json" for i in range(5)]
    for key in many:
        storage.put_bytes(key, b'{"files": []}')
    indexes.mark_changed(storage, SCOPE)
    await ScopeIndexes(reader, SCOPE).first(many[:1])  # an earlier request remembered the first index
    storage.keys_read.clear()
    request = ScopeIndexes(reader, SCOPE)
    found = await asyncio.gather(*(request.first([key]) for key in many))
    assert found == [{"files": []}] * 5
    marker = keys.index_generation(SCOPE)
    assert storage.keys_read.count(marker) == 1
    assert sorted(k for k in storage.keys_read if k != marker) == many[1:]  # the remembered one was not read again
    storage.keys_read.clear()
    await asyncio.gather(*(ScopeIndexes(reader, SCOPE).first([key]) for key in many))  # five warm requests
    assert storage.keys_read == [marker] * 5


def test_a_rewrite_between_version_and_read_is_read_again(local: CountingStorage,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The version is taken before the bytes: a concurrent upload leaves the memory stale-marked, never wrong."""
    reader = IndexReader(local)  # type: ignore[arg-type]
    put(local, {"v": 1})
    real_get = local.get_bytes

    def racing_get(key: str, max_bytes: int | None = None) -> bytes:
        data = real_get(key, max_bytes)
        put(local.backend, {"v": 2})  # lands after the version was taken, before the answer is kept
        return data

    monkeypatch.setattr(local, "get_bytes", racing_get)
    assert reader.read(KEY) == {"v": 1}
    monkeypatch.undo()
    assert reader.remembered(KEY) is NOT_REMEMBERED
    assert reader.read(KEY) == {"v": 2}
    assert os.path.exists(local.backend.root / KEY)


def test_entry_folder_is_merged_versioned_by_the_marker_and_reads_the_old_layout(local: CountingStorage) -> None:
    """A debug-id index is a folder of entries (issue 15.12): writers never overwrite each other. On local
    storage the folder is vouched for by one stat of the scope's marker; the object the earlier layout wrote
    is merged in."""
    from symbolicator.types import DebugId

    debug_id = DebugId.parse("4051f32d-ac09-5197-9282-d0e3e8986285")
    folder = keys.debug_id_index(SCOPE, debug_id)
    legacy = keys.legacy_index(folder)
    assert legacy == f"index/{SCOPE}/debug-id/{debug_id}.json"
    local.put_bytes(legacy, json.dumps({"debug_id": str(debug_id), "files": [{"key": "old"}]}).encode())
    reader = IndexReader(local)
    assert reader.read(folder) == {"debug_id": str(debug_id), "files": [{"key": "old"}]}

    for name in ("b", "a"):
        indexes.add_debug_file(local, SCOPE, debug_id, "c0de", {"key": f"files/{name}", "kind": "debuginfo"})
    indexes.mark_changed(local, SCOPE)
    assert reader.remembered(folder) is NOT_REMEMBERED, "the marker changed"
    merged = reader.read(folder)
    assert merged is not None and [f["key"] for f in merged["files"]] == ["files/a", "files/b", "old"], \
        "an index written before the upgrade still counts"
    reads = local.reads
    assert reader.remembered(folder) == merged and local.reads == reads
    indexes.add_debug_file(local, SCOPE, debug_id, "c0de", {"key": "files/a", "kind": "debuginfo", "new": 1})
    indexes.mark_changed(local, SCOPE)
    assert reader.remembered(folder) is NOT_REMEMBERED
    again = reader.read(folder)
    assert again is not None and [f.get("new") for f in again["files"]] == [1, None, None], \
        "an entry is rewritten in place"


def test_writing_many_indexes_keeps_no_state_per_key(tmp_path: Path) -> None:
    """Index writers hold nothing per key (no lock dict that grows with every debug id ever seen):
    what the indexes module allocates while 500 distinct debug ids are written is gone after."""
    import tracemalloc
    import uuid

    from symbolicator.types import DebugId

    storage = LocalStorage(tmp_path / "uploads")
    ids = [DebugId(uuid.UUID(int=n + 1)) for n in range(500)]
    here = tracemalloc.Filter(True, indexes.__file__)

    def write(batch: list[DebugId]) -> None:
        for debug_id in batch:
            entry = {"key": f"files/{SCOPE}/{debug_id.uuid.hex[:2]}/{debug_id.uuid.hex[2:]}/debuginfo"}
            indexes.add_debug_file(storage, SCOPE, debug_id, debug_id.uuid.hex, entry)
        indexes.mark_changed(storage, SCOPE)

    write(ids[:10])  # first calls: imports and caches that are made once
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot().filter_traces([here])
        write(ids[10:])
        after = tracemalloc.take_snapshot().filter_traces([here])
    finally:
        tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown < 16 * 1024, f"indexes.py kept {grown} bytes after writing {len(ids) - 10} debug ids"
    assert sum(1 for _ in storage.list(f"index/{SCOPE}/@debug-id/")) == len(ids)
