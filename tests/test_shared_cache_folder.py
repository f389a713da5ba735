"""The shared cache on a folder (`cache.shared = "/some/folder"`), in process: publish, fetch, damage.

Two `CacheStore`s stand for two instances' derived caches. The converted file is a
real symcache built from a fixture; the damaged objects are cut at every kind of
place (inside the file, inside the extras, inside the trailer).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from symbolicator import keys
from symbolicator.caching import CacheStore
from symbolicator.caching.shared import TRAILER, SharedCache
from symbolicator.service.native.modules import convert_debug_file
from symbolicator.storage.configured import open_shared_storage

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/c_gcc_O2_dwarf5"
KEY = "symcache/v1/" + "ab" * 20 + "/any"


async def published(tmp_path: Path) -> tuple[SharedCache, list[str], bytes]:
    events: list[str] = []
    store = open_shared_storage(str(tmp_path / "shared"))
    assert store is not None
    shared = SharedCache(store, events.append)
    a = CacheStore(tmp_path / "a", 1 << 30, "derived")
    out = a.temp_path()
    convert_debug_file(str(ELF), str(out), None)
    data = out.read_bytes()
    await shared.publish(KEY, out, {"meta": {"arch": "x86_64"}}, a)
    out.unlink()  # moved or evicted meanwhile: the open file is what gets published
    await shared.close()
    return shared, events, data


async def test_published_by_one_store_fetched_by_another(tmp_path: Path) -> None:
    shared, events, data = await published(tmp_path)
    b = CacheStore(tmp_path / "b", 1 << 30, "derived")
    found = await shared.fetch(KEY, b)
    assert found is not None
    assert found[0].read_bytes() == data and found[1] == {"meta": {"arch": "x86_64"}}
    assert await shared.fetch(KEY.replace("ab", "cd"), b) is None
    assert events == ["published", "hit", "miss"]


@pytest.mark.parametrize("cut", [1, 50, TRAILER.size - 1, TRAILER.size + 5, 1000])
async def test_a_cut_object_is_refused(tmp_path: Path, cut: int) -> None:
    shared, events, _ = await published(tmp_path)
    stored = tmp_path / "shared" / keys.shared_cache(KEY)
    stored.write_bytes(stored.read_bytes()[:-cut])
    assert await shared.fetch(KEY, CacheStore(tmp_path / "b", 1 << 30, "derived")) is None
    assert events[-1] == "damaged"
    assert list((tmp_path / "b" / "tmp").iterdir()) == []  # the refused download is not left behind


async def test_an_object_copied_under_another_key_is_refused(tmp_path: Path) -> None:
    shared, events, _ = await published(tmp_path)
    other = KEY.replace("ab", "cd")
    target = tmp_path / "shared" / keys.shared_cache(other)
    target.parent.mkdir(parents=True)
    target.write_bytes((tmp_path / "shared" / keys.shared_cache(KEY)).read_bytes())
    assert await shared.fetch(other, CacheStore(tmp_path / "b", 1 << 30, "derived")) is None
    assert events[-1] == "damaged"
