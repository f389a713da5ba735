"""One computation per cache key across processes: `serve --processes N` converts a file once.

`Coalescer` shares work between the requests of one event loop; processes that
share a cache folder need more. `KeyLocks` gives each key a lock file under the
store's folder (`locks/`, named by a hash of the key) held with `flock`:

* **Taken without blocking the loop.** `flock(LOCK_NB)` is tried on the loop (a
  system call that never waits) and retried after a short sleep that grows to
  `MAX_POLL_S`, so a waiter holds no thread and no worker.
* **Waiters pick up the result.** The holder stores the value (or a negative
  entry) before it lets go; `get_or_compute` looks in the store again as soon as
  it has the lock, so a waiter that finds the value never computes.
* **Nothing stale survives a crash.** A `flock` belongs to the open file, so the
  kernel drops it when the holder dies, SIGKILL included: the next waiter takes
  the lock, finds no value, and computes.
* **Lock files do not pile up.** The holder unlinks its file before closing it. A
  waiter may have opened the old file meanwhile and then locked an unlinked inode,
  so every taker checks that the path still names the inode it locked, and starts
  over if not (the usual unlink-safe flock protocol).

* **A failing disk degrades, it does not break.** When the lock file cannot be
  created (a read-only or failing cache disk), the key is computed without the
  cross-process lock, as before it existed: processes may then compute it twice,
  but requests are answered.

Two apps in one process sharing a cache folder (the tests run several) take turns
too: a `flock` on a second open file of the same path conflicts even within a process.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

log = logging.getLogger(__name__)

FIRST_POLL_S = 0.005
MAX_POLL_S = 0.1


class KeyLocks:
    """Per-key `flock`s in `directory` (one file per key while it is held)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)

    def path(self, key: str) -> Path:
        return self.directory / (hashlib.sha1(key.encode("utf-8", "surrogatepass")).hexdigest() + ".lock")

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold `key`'s lock (look in the store again once inside: another process may have filled it)."""
        path = self.path(key)
        fd = await self._acquire(path)
        if fd is None:
            yield
            return
        try:
            yield
        finally:
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)  # releases the flock

    async def _acquire(self, path: Path) -> int | None:
        """The locked file's descriptor; None when no lock file can be made."""
        delay = FIRST_POLL_S
        while True:
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            except OSError as exc:
                log.warning("cannot lock %s (%s): computing without the cross-process lock", path.name, exc)
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                await asyncio.sleep(delay)
                delay = min(delay * 2, MAX_POLL_S)
                continue
            except BaseException:
                os.close(fd)
                raise
            if _same_file(fd, path):
                return fd
            os.close(fd)  # locked a file its holder had already unlinked: take the new one


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    own = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (own.st_dev, own.st_ino)
