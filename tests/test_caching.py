"""The cache layer on a real diskcache directory: caps, LRU, negative entries, coalescing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Iterator

import pytest

from symbolicator import cli
from symbolicator.caching import CacheEntry, Caches, CacheStore, Coalescer, EntryTooLarge, get_or_compute
from symbolicator.caching.memo import Lru, OpenedFiles
from symbolicator.errors import MalformedObject, Outcome, UnsupportedFormat
from symbolicator.keys import cache_key

KiB = 1024
MiB = 1024 * KiB


def key(name: str) -> str:
    return cache_key("test", 1, name)


def files_on_disk(directory: Path) -> int:
    return sum(p.stat().st_size for p in directory.rglob("*.val"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[CacheStore]:
    s = CacheStore(tmp_path / "store", 64 * MiB, "test")
    yield s
    s.close()


# --- values as files ---------------------------------------------------------------------


def test_put_bytes_small_value_is_a_file(store: CacheStore) -> None:
    path = store.put_bytes(key("tiny"), b"x")
    assert path.is_file() and path.read_bytes() == b"x"
    entry = store.get(key("tiny"))
    assert entry == CacheEntry(path=path) and not entry.is_negative
    empty = store.put_bytes(key("empty"), b"")
    assert store.get(key("empty")) == CacheEntry(path=empty) and empty.read_bytes() == b""


def test_put_file_moves_the_file_in(store: CacheStore) -> None:
    src = store.temp_path()
    src.write_bytes(b"symcache")
    path = store.put_file(key("a"), src)
    assert not src.exists()
    assert path.read_bytes() == b"symcache"
    assert path.is_relative_to(store.directory)


def test_put_file_across_file_systems_copies(store: CacheStore) -> None:
    shm = Path("/dev/shm")
    if not shm.is_dir() or shm.stat().st_dev == store.directory.stat().st_dev:
        pytest.skip("needs a second file system")
    src = shm / f"symbolicator-test-{os.getpid()}"
    src.write_bytes(b"z" * 100_000)
    path = store.put_file(key("far"), src)
    assert not src.exists() and path.read_bytes() == b"z" * 100_000


def test_overwrite_replaces_and_removes_the_old_file(store: CacheStore) -> None:
    old = store.put_bytes(key("k"), b"one")
    new = store.put_bytes(key("k"), b"two")
    assert not old.exists()
    assert store.get(key("k")) == CacheEntry(path=new) and new.read_bytes() == b"two"


def test_big_value_in_and_out_with_bounded_memory(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "big", 512 * MiB, "big")
    src = store.temp_path()
    block = os.urandom(MiB)
    digest = hashlib.sha256()
    with src.open("wb") as f:
        for _ in range(120):
            f.write(block)
            digest.update(block)

    tracemalloc.start()
    try:
        path = store.put_file(key("big"), src)
        entry = store.get(key("big"))
        assert entry is not None and entry.path == path
        readback = hashlib.sha256()
        with entry.path.open("rb") as f:
            while chunk := f.read(MiB):
                readback.update(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert readback.hexdigest() == digest.hexdigest()
    assert path.stat().st_size == 120 * MiB
    assert peak < 8 * MiB, f"peak {peak} bytes for a 120 MiB value"
    store.close()


def test_value_bigger_than_the_cap_is_refused(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "small", 1 * MiB, "small")
    src = store.temp_path()
    src.write_bytes(b"x" * (2 * MiB))
    with pytest.raises(EntryTooLarge):
        store.put_file(key("huge"), src)
    assert src.exists() and store.get(key("huge")) is None
    store.close()


# --- size cap and LRU --------------------------------------------------------------------


def test_cap_holds_and_hot_entries_survive(tmp_path: Path) -> None:
    cap = 2 * MiB
    store = CacheStore(tmp_path / "lru", cap, "lru")
    value = b"v" * (100 * KiB)
    hot = [key(f"hot{i}") for i in range(4)]
    for k in hot:
        store.put_bytes(k, value)
    cold = [key(f"cold{i}") for i in range(60)]
    for k in cold:
        store.put_bytes(k, value)
        for h in hot:
            assert store.get(h) is not None, f"{h} evicted although used after every write"
        stats = store.stats()
        assert stats["bytes"] <= cap
        assert files_on_disk(store.directory) <= cap
    assert all(store.get(h) is not None for h in hot)
    assert all(store.get(k) is None for k in cold[:30])
    assert store.get(cold[-1]) is not None
    assert 15 <= store.stats()["entries"] <= 20
    store.close()


def test_prune_culls_to_a_lowered_cap(tmp_path: Path) -> None:
    big = CacheStore(tmp_path / "c", 8 * MiB, "c")
    for i in range(40):
        big.put_bytes(key(str(i)), b"v" * (100 * KiB))
    big.close()
    small = CacheStore(tmp_path / "c", 1 * MiB, "c")
    result = small.prune()
    assert 30 <= result["removed_entries"] <= 31
    assert result["bytes"] <= 1 * MiB < result["bytes_before"]
    assert small.get(key("39")) is not None and small.get(key("0")) is None
    everything = small.prune(everything=True)
    assert everything["entries"] == 0 and files_on_disk(small.directory) == 0
    small.close()


def test_prune_removes_only_old_temp_files(store: CacheStore) -> None:
    old, fresh = store.temp_path(), store.temp_path()
    os.utime(old, (time.time() - 7 * 3600,) * 2)
    assert store.prune()["removed_temp_files"] == 1
    assert not old.exists() and fresh.exists()


# --- negative entries --------------------------------------------------------------------


def test_negative_entries_expire(store: CacheStore) -> None:
    entry = store.set_negative(key("gone"), Outcome.NOT_FOUND, expire=0.3)
    assert entry.is_negative and entry.path is None
    got = store.get(key("gone"))
    assert got is not None and got.outcome is Outcome.NOT_FOUND
    assert got.expires_at is not None and got.expires_at <= time.time() + 0.3
    assert store.stats()["negative_entries"] == 1
    time.sleep(0.4)
    assert store.get(key("gone")) is None
    assert store.stats()["negative_entries"] == 0


def test_negative_default_expiry(store: CacheStore) -> None:
    now = time.time()
    expected = {Outcome.NOT_FOUND: 3600, Outcome.MALFORMED: 86400, Outcome.TIMEOUT: 3600}
    for outcome, ttl in expected.items():
        store.set_negative(key(outcome.value), outcome)
        got = store.get(key(outcome.value))
        assert got is not None and got.outcome is outcome and got.expires_at is not None
        assert abs(got.expires_at - (now + ttl)) < 5


def test_only_outcomes_can_be_cached_negative(store: CacheStore) -> None:
    with pytest.raises(TypeError):
        store.set_negative(key("x"), "internal_error")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        store.set_negative(key("x"), RuntimeError("boom"))  # type: ignore[arg-type]
    assert store.get(key("x")) is None


def test_delete_drops_an_entry_and_its_file(store: CacheStore) -> None:
    path = store.put_bytes(key("p"), b"data")
    assert store.get(key("p")) == CacheEntry(path=path)
    assert store.delete(key("p")) is True and store.get(key("p")) is None and not path.exists()


# --- damaged files -----------------------------------------------------------------------


def test_deleted_file_is_a_miss_and_is_dropped(store: CacheStore) -> None:
    path = store.put_bytes(key("k"), b"abc" * 1000)
    path.unlink()
    assert store.get(key("k")) is None
    assert store.stats()["entries"] == 0


def test_truncated_file_is_a_miss_and_is_dropped(store: CacheStore) -> None:
    path = store.put_bytes(key("k"), b"abc" * 1000)
    with path.open("r+b") as f:
        f.truncate(10)
    assert store.get(key("k")) is None
    assert not path.exists() and store.stats()["entries"] == 0
    assert store.stats()["misses"] == 1


# --- processes and threads ---------------------------------------------------------------

_CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from symbolicator.caching import CacheStore
    store = CacheStore(Path(sys.argv[1]), 4 * 1024 * 1024, "test")
    entry = store.get(sys.argv[2])
    print(entry.path.read_text() if entry else "MISS", flush=True)
    for i in range(int(sys.argv[4])):
        store.put_bytes(f"child/{i}", b"c" * 50_000)
    store.put_bytes(sys.argv[3], b"from child")
    entry = store.get(sys.argv[3])
    print(entry.path.read_text() if entry else "LOST", flush=True)
    """
)


def test_two_processes_share_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    store = CacheStore(directory, 4 * MiB, "test")
    store.put_bytes(key("parent"), b"from parent")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(directory), key("parent"), key("child"), "0"],
        capture_output=True, text=True, check=True, timeout=30,
    ).stdout
    assert out.splitlines() == ["from parent", "from child"]
    entry = store.get(key("child"))
    assert entry is not None and entry.path is not None and entry.path.read_bytes() == b"from child"
    store.close()


def test_concurrent_writers_in_two_processes_keep_the_cap(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    store = CacheStore(directory, 4 * MiB, "test")
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(directory), "none", key("done"), "120"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "MISS"
    for i in range(120):
        store.put_bytes(f"parent/{i}", b"p" * 50_000)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    assert out.strip() == "from child"
    # Either writer may have evicted the other's entries (LRU); what survives must be whole.
    survivors = 0
    for i in range(120):
        for who, byte in (("parent", b"p"), ("child", b"c")):
            entry = store.get(f"{who}/{i}")
            if entry is not None:
                assert entry.path is not None and entry.path.read_bytes() == byte * 50_000
                survivors += 1
    assert survivors * 50_000 >= 3 * MiB
    assert store.stats()["bytes"] <= 4 * MiB
    assert files_on_disk(directory) <= 4 * MiB
    store.close()


async def test_threads_share_one_store(store: CacheStore) -> None:
    async def worker(i: int) -> None:
        await asyncio.to_thread(store.put_bytes, key(f"t{i}"), str(i).encode())
        entry = await asyncio.to_thread(store.get, key(f"t{i}"))
        assert entry is not None and entry.path is not None and entry.path.read_bytes() == str(i).encode()

    await asyncio.gather(*(worker(i) for i in range(40)))
    assert store.stats()["entries"] == 40


def test_caches_have_two_budgets(tmp_path: Path) -> None:
    caches = Caches.open(tmp_path / "cache", 8 * MiB, 2 * MiB)
    assert caches.downloads.max_bytes == 8 * MiB and caches.derived.max_bytes == 2 * MiB
    caches.downloads.put_bytes(key("k"), b"download")
    assert caches.derived.get(key("k")) is None
    assert (tmp_path / "cache" / "downloads").is_dir() and (tmp_path / "cache" / "derived").is_dir()
    caches.close()
    reopened = Caches.open(tmp_path / "cache", None, None)
    assert reopened.derived.max_bytes == 2 * MiB
    assert reopened.downloads.get(key("k")) is not None
    reopened.close()


# --- coalescing ----------------------------------------------------------------------------


async def test_coalescer_shares_result_and_exception_then_forgets() -> None:
    coalescer = Coalescer()
    calls = 0

    async def slow() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return 42

    assert await asyncio.gather(*(coalescer.run("k", slow) for _ in range(10))) == [42] * 10
    assert calls == 1 and "k" not in coalescer

    async def failing() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        raise RuntimeError("boom")

    results = await asyncio.gather(*(coalescer.run("k", failing) for _ in range(5)), return_exceptions=True)
    assert calls == 2 and all(isinstance(r, RuntimeError) for r in results)
    assert await coalescer.run("k", slow) == 42 and calls == 3 and len(coalescer) == 0


async def test_cancelled_caller_does_not_cancel_the_others() -> None:
    coalescer = Coalescer()

    async def slow() -> str:
        await asyncio.sleep(0.1)
        return "done"

    first = asyncio.create_task(coalescer.run("k", slow))
    second = asyncio.create_task(coalescer.run("k", slow))
    await asyncio.sleep(0.01)
    first.cancel()
    assert await second == "done"
    assert first.cancelled()


async def test_get_or_compute_runs_once_for_50_callers(store: CacheStore) -> None:
    coalescer = Coalescer()
    computed = 0

    async def compute() -> Path:
        nonlocal computed
        computed += 1
        await asyncio.sleep(0.1)
        path = store.temp_path()
        path.write_bytes(b"converted")
        return path

    entries = await asyncio.gather(*(get_or_compute(store, coalescer, key("m"), compute) for _ in range(50)))
    assert computed == 1
    assert len({e.path for e in entries}) == 1
    assert entries[0].path is not None and entries[0].path.read_bytes() == b"converted"
    again = await get_or_compute(store, coalescer, key("m"), compute)
    assert again == entries[0] and computed == 1


async def test_get_or_compute_does_not_cache_internal_errors(store: CacheStore) -> None:
    coalescer = Coalescer()
    computed = 0

    async def flaky() -> Path:
        nonlocal computed
        computed += 1
        if computed == 1:
            raise RuntimeError("disk hiccup")
        path = store.temp_path()
        path.write_bytes(b"ok")
        return path

    with pytest.raises(RuntimeError):
        await get_or_compute(store, coalescer, key("f"), flaky)
    assert store.get(key("f")) is None
    entry = await get_or_compute(store, coalescer, key("f"), flaky)
    assert computed == 2 and entry.path is not None and entry.path.read_bytes() == b"ok"


async def test_get_or_compute_stores_format_errors_and_outcomes(store: CacheStore) -> None:
    coalescer = Coalescer()
    computed = 0

    async def broken() -> Path:
        nonlocal computed
        computed += 1
        raise MalformedObject("truncated DWARF")

    with pytest.raises(MalformedObject):
        await get_or_compute(store, coalescer, key("bad"), broken)
    entry = await get_or_compute(store, coalescer, key("bad"), broken)
    assert entry.outcome is Outcome.MALFORMED and computed == 1

    async def unsupported() -> Path:
        raise UnsupportedFormat("PE is not supported")

    with pytest.raises(UnsupportedFormat):
        await get_or_compute(store, coalescer, key("pe"), unsupported)
    got = store.get(key("pe"))
    assert got is not None and got.outcome is Outcome.UNSUPPORTED

    async def missing() -> Outcome:
        return Outcome.NOT_FOUND

    entry = await get_or_compute(store, coalescer, key("missing"), missing)
    assert entry.outcome is Outcome.NOT_FOUND
    stored = store.get(key("missing"))
    assert stored is not None and stored.outcome is Outcome.NOT_FOUND


# --- the command line --------------------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SYMBOLICATOR_"):
            monkeypatch.delenv(name)


def test_cli_stats_and_prune(tmp_path: Path, capsys: pytest.CaptureFixture[str], clean_env: None) -> None:
    cache_dir = tmp_path / "cache"
    config = tmp_path / "config.toml"
    config.write_text(f'[cache]\ndir = "{cache_dir}"\ndownloads_max_bytes = {8 * MiB}\nderived_max_bytes = {2 * MiB}\n')
    caches = Caches.open(cache_dir, 8 * MiB, 2 * MiB)
    caches.derived.put_bytes(key("a"), b"x" * (100 * KiB))
    caches.downloads.set_negative(key("n"), Outcome.NOT_FOUND)
    caches.close()

    assert cli.main(["cache", "stats", "--config", str(config), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["derived"]["entries"] == 1 and stats["derived"]["max_bytes"] == 2 * MiB
    assert stats["derived"]["bytes"] >= 100 * KiB
    assert stats["downloads"]["negative_entries"] == 1

    assert cli.main(["cache", "stats", "--cache-dir", str(cache_dir)]) == 0
    text = capsys.readouterr().out
    assert "derived" in text and "MiB" in text

    assert cli.main(["cache", "prune", "--config", str(config)]) == 0
    assert "derived: removed 0 entries" in capsys.readouterr().out
    assert cli.main(["cache", "prune", "--cache-dir", str(cache_dir), "--all", "--json"]) == 0
    pruned = json.loads(capsys.readouterr().out)
    assert pruned["derived"]["removed_entries"] == 1 and pruned["downloads"]["removed_entries"] == 1

    assert cli.main(["cache", "stats", "--cache-dir", str(tmp_path / "nowhere")]) == 1


def test_cli_subprocess_help_and_json(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBOLICATOR_")}
    Caches.open(tmp_path / "cache", 8 * MiB, 2 * MiB).close()
    run = subprocess.run(
        [sys.executable, "-m", "symbolicator", "cache", "stats", "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["downloads"]["entries"] == 0
    usage = subprocess.run(
        [sys.executable, "-m", "symbolicator", "cache"], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert usage.returncode == 2 and "stats" in usage.stderr


# --- memos of opened files ------------------------------------------------------------------


async def test_memo_hits_keep_a_hot_file_in_the_disk_lru(tmp_path: Path) -> None:
    """Without the memo's rechecks the hot entry is the least recently used and goes first."""
    survived = {}
    for recheck in (True, False):
        store = CacheStore(tmp_path / str(recheck), 1 * MiB, "test")
        memo: OpenedFiles[str] = OpenedFiles(8, recheck_s=0.0)
        store.put_bytes(key("hot"), b"h" * 300_000)
        memo.put(key("hot"), "opened hot")
        for i in range(12):
            store.put_bytes(key(f"cold{i}"), b"c" * 300_000)
            if recheck:
                assert await memo.get(store, key("hot")) == "opened hot"
        survived[recheck] = store.get(key("hot")) is not None
        store.close()
    assert survived == {True: True, False: False}


async def test_memo_forgets_a_file_the_store_no_longer_has(store: CacheStore) -> None:
    memo: OpenedFiles[str] = OpenedFiles(8, recheck_s=0.0)
    store.put_bytes(key("a"), b"a")
    store.put_bytes(key("meta"), b"m")
    memo.put(key("a"), "opened a", variant="url")
    assert await memo.get(store, key("a"), "url", companions=(key("meta"),)) == "opened a"
    assert await memo.get(store, key("a"), "other url") is None
    store.delete(key("meta"))
    assert await memo.get(store, key("a"), "url", companions=(key("meta"),)) is None
    store.put_bytes(key("meta"), b"m")
    assert await memo.get(store, key("a"), "url", companions=(key("meta"),)) is None  # gone until put again


async def test_memo_rechecks_only_after_its_interval(store: CacheStore) -> None:
    memo: OpenedFiles[str] = OpenedFiles(8, recheck_s=3600.0)
    store.put_bytes(key("a"), b"a")
    memo.put(key("a"), "opened a")
    store.delete(key("a"))
    assert await memo.get(store, key("a")) == "opened a"  # a hit costs no cache-database read


def test_lru_by_count_and_size() -> None:
    lru: Lru[str, int] = Lru(3, max_size=10)
    for name, size in (("a", 4), ("b", 4), ("c", 1)):
        lru.put(name, size, size)
    assert lru.get("a") == 4
    lru.put("d", 4, 4)
    assert lru.get("b") is None and lru.get("a") == 4
    assert lru.pop("a") == 4 and lru.get("a") is None


async def test_memo_drops_a_file_changed_on_disk_at_the_next_hit(store: CacheStore) -> None:
    memo: OpenedFiles[str] = OpenedFiles(8, recheck_s=3600.0)
    path = store.put_bytes(key("a"), b"a" * 100)
    memo.put(key("a"), "opened a", path=path)
    assert await memo.get(store, key("a")) == "opened a"
    with open(path, "r+b") as f:
        f.write(b"X")
    assert await memo.get(store, key("a")) is None


def test_concurrent_writers_never_take_the_folder_past_the_cap(tmp_path: Path) -> None:
    """Room is made before a file moves in, under a lock all processes share."""
    store = CacheStore(tmp_path / "c", 4 * MiB, "test")
    payload = os.urandom(256 * KiB)

    def writer(prefix: str) -> None:
        for i in range(60):
            src = store.temp_path()
            src.write_bytes(payload)
            store.put_file(key(f"{prefix}{i}"), src)

    def folder_bytes() -> int:
        total = 0
        for folder, _, names in os.walk(store.directory):  # what the cap bounds: entries + cache.db
            if folder.startswith(str(store.temp_dir)):
                continue
            for name in names:
                if not name.startswith("cache.db-"):
                    try:
                        total += os.stat(os.path.join(folder, name)).st_size
                    except FileNotFoundError:
                        pass
        return total

    threads = [threading.Thread(target=writer, args=(p,)) for p in "ab"]
    for t in threads:
        t.start()
    worst = 0
    while any(t.is_alive() for t in threads):
        worst = max(worst, folder_bytes())
    for t in threads:
        t.join()
    assert 0 < worst <= 4 * MiB
    store.close()


async def test_noted_uses_keep_a_hot_file_even_when_the_cache_turns_over_between_rechecks(tmp_path: Path) -> None:
    store = CacheStore(tmp_path / "c", 1 * MiB, "test")
    memo: OpenedFiles[str] = OpenedFiles(8, recheck_s=3600.0)
    memo.put(key("hot"), "opened hot", path=store.put_bytes(key("hot"), b"h" * 300_000))
    for i in range(12):
        store.put_bytes(key(f"cold{i}"), b"c" * 300_000)
        assert await memo.get(store, key("hot")) == "opened hot"
    assert store.get(key("hot")) is not None
    store.close()


async def test_opening_a_file_forgets_the_ones_the_store_evicted(tmp_path: Path) -> None:
    """Each is opened once and never asked for again: only a sweep can release their maps."""
    store = CacheStore(tmp_path / "c", 1 * MiB, "test")
    memo: OpenedFiles[str] = OpenedFiles(64, recheck_s=3600.0)
    for i in range(12):
        memo.put(key(f"m{i}"), f"opened {i}", path=store.put_bytes(key(f"m{i}"), b"m" * 300_000))
    assert len(memo) <= 4
    store.close()
