"""Per-key file locks of the cache folder (`caching/keylock.py`): one computation per key across processes.

Two `CacheStore`s opened on one folder stand for two service processes (each has its
own `Coalescer`, as processes do); a real child process holds a lock and is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from symbolicator.caching import CacheStore, Coalescer, get_or_compute
from symbolicator.caching.keylock import KeyLocks


async def test_two_stores_on_one_folder_compute_a_key_once(tmp_path: Path) -> None:
    first, second = CacheStore(tmp_path, 1 << 30, "derived"), CacheStore(tmp_path, 1 << 30, "derived")
    computed: list[CacheStore] = []

    def computing(store: CacheStore):  # type: ignore[no-untyped-def]
        async def compute() -> Path:
            computed.append(store)
            await asyncio.sleep(0.3)  # a conversion: long enough for the other to miss meanwhile
            out = store.temp_path()
            out.write_bytes(b"converted")
            return out
        return compute

    a, b = await asyncio.gather(get_or_compute(first, Coalescer(), "symcache/v1/x", computing(first)),
                                get_or_compute(second, Coalescer(), "symcache/v1/x", computing(second)))
    assert len(computed) == 1
    assert a.path is not None and b.path is not None and b.path.read_bytes() == b"converted"
    assert list((tmp_path / "locks").iterdir()) == []  # released locks leave no files


def test_a_killed_holder_releases_the_lock(tmp_path: Path) -> None:
    locks = KeyLocks(tmp_path / "locks")
    holder = subprocess.Popen([sys.executable, "-c", (
        "import fcntl, os, sys, time\n"
        f"fd = os.open({str(locks.path('k'))!r}, os.O_RDWR | os.O_CREAT)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n")], stdout=subprocess.PIPE)
    with holder:  # closes its stdout
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        asyncio.run(_waits_then_takes(locks, holder))


async def _waits_then_takes(locks: KeyLocks, holder: subprocess.Popen[bytes]) -> None:
    taking = asyncio.ensure_future(_take(locks))
    await asyncio.sleep(0.3)
    assert not taking.done()  # waits while the other process holds it
    os.kill(holder.pid, signal.SIGKILL)
    await asyncio.to_thread(holder.wait)
    await asyncio.wait_for(taking, 5)


async def _take(locks: KeyLocks) -> None:
    async with locks.hold("k"):
        pass


async def test_without_a_usable_lock_folder_the_key_is_still_computed(tmp_path: Path) -> None:
    """A failing cache disk degrades to in-process coalescing; it does not fail the request."""
    store = CacheStore(tmp_path, 1 << 30, "derived")
    store.locks.directory.rmdir()
    store.locks.directory.write_bytes(b"")  # a file where the folder was: every lock file fails with ENOTDIR

    async def compute() -> Path:
        out = store.temp_path()
        out.write_bytes(b"converted")
        return out

    entry = await get_or_compute(store, Coalescer(), "symcache/v1/y", compute)
    assert entry.path is not None and entry.path.read_bytes() == b"converted"
