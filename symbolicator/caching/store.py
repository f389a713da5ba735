"""The on-disk caches: size-capped, LRU, values as files, negative entries that expire.

Design
------
`CacheStore` is a thin layer over `diskcache.Cache` (SQLite index + one file per
value), which is safe to share between threads and between processes: the service
processes and their conversion workers all open the same directory.

* **Values are files.** A cached value can be a 2 GB dSYM or a symcache that a lookup
  memory-maps, so nothing ever goes through memory whole: `put_file` *moves* a
  finished temp file into the cache (a rename; a streamed copy across file systems),
  `put_bytes` streams, and `get` hands back the path of the stored file. The custom
  `_FileDisk` makes every positive value a file regardless of diskcache's
  `disk_min_file_size`, and returns paths instead of opening them. Temp files are
  made with `temp_path()` inside the cache directory so the final move is a rename.
* **Every file is checked on the way out.** The entry's tag holds the size and the
  CRC-32 of what was written; a file that vanished, changed size or no longer has
  that checksum is removed and reads as a miss, never served (the caller computes
  it again). Hashing costs ~0.5 ms per MB, so each process hashes a file once and
  then trusts it while its inode, size, mtime and ctime stay the same: any write
  through the file system (a flipped byte, a truncation) changes the ctime, which
  nobody can set back, and makes the next `get` hash it again.
* **A full or failing disk degrades, it does not break.** Reading an entry updates
  its access time (LRU), which is a write; when SQLite cannot write, `get` falls
  back to a plain read, so warm entries keep being served. Writes that fail
  (`put_file`, `put_bytes`) raise `CacheWriteFailed`; a negative entry that cannot
  be stored, or a damaged one that cannot be dropped, is only logged: both are
  optimisations, and the request they belong to must still answer.
* **Two budgets** (`Caches`): downloads are big and cheap to fetch again, derived
  caches (symcaches, sourcemap caches) are small and expensive to rebuild. One
  shared cap would let a burst of big downloads evict every derived cache. Each
  store culls least-recently-used entries after every write until it is under its
  own cap (diskcache alone culls at most ten entries per write).
* **Negative entries expire.** "Not found" (1 h) and "malformed" (24 h) are worth
  remembering: 50 events for a missing debug file should not cause 50 fetches. But
  the answer changes (an upload arrives, a source recovers, a fix is deployed), so
  they expire. Nothing clears them sooner: uploads are found through the indexes
  (`artifacts/indexes.py`), which are not kept in this cache.
* **Internal errors are never cached**: a bug or a flaky disk must not poison a key
  for an hour. `set_negative` takes an `Outcome`, and `Outcome` has no member for
  them; anything else is a `TypeError`.
* **A crash leaves nothing behind.** A value is produced in a temp file named after
  the producing process and moved in whole, so a process killed mid-write leaves no
  entry, only that temp file; opening the store removes temp files of processes
  that are gone (as `LocalStorage` does), and `prune` those older than
  `TEMP_MAX_AGE`.
* **Versions live in the keys** (`keys.cache_key`), so a format change never reads
  an old entry; old entries age out through LRU.

Races: a path returned by `get` may be evicted or replaced by another process before
the caller opens it. Open it promptly (an open file or a mmap survives deletion on
POSIX) and treat `FileNotFoundError` as a miss.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import sqlite3
import tempfile
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import diskcache
from diskcache.core import MODE_BINARY, UNKNOWN

from symbolicator.caching.keylock import KeyLocks
from symbolicator.errors import CacheWriteFailed, EntryTooLarge, Outcome
from symbolicator.pids import process_alive

if TYPE_CHECKING:
    from symbolicator.caching.shared import SharedCache

log = logging.getLogger(__name__)

HOUR = 3600.0
NEGATIVE_TTL: dict[Outcome, float] = {Outcome.NOT_FOUND: HOUR, Outcome.MALFORMED: 24 * HOUR}
DEFAULT_NEGATIVE_TTL = HOUR
TEMP_MAX_AGE = 6 * HOUR
_NEGATIVE_TAG = "negative"
_ROW_BYTES = 64 * 1024  # room for the entry's row: the database file counts against the cap too
_DB_TIMEOUT = 60.0
_HASH_BLOCK = 1 << 20
_VERIFIED_MAX = 8192


def file_tag(size: int, crc: int) -> str:
    """The tag of a positive entry: what `_intact` checks the file against."""
    return f"crc32:{size}:{crc:08x}"


def file_crc(path: Path) -> int:
    """CRC-32 of a file, streamed (zlib releases the GIL on big blocks)."""
    crc = 0
    with open(path, "rb") as f:
        while block := f.read(_HASH_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


@dataclass(frozen=True, slots=True)
class FileState:
    """One version of a file on disk. Any write through the file system changes the
    ctime, which no one can set back, so an unchanged state means unchanged bytes:
    code that keeps a cached file open (a memory map in an LRU) compares states to
    notice that the file was damaged meanwhile, without hashing it again."""

    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileState | None:
        """The file's current state; None when it is gone."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return cls(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


@dataclass(frozen=True, slots=True)
class CacheEntry:
    """A positive entry has `path` (the stored file); a negative one `outcome`.

    `expires_at` is in Unix seconds (None: never, the case of positive entries).
    """

    path: Path | None = None
    outcome: Outcome | None = None
    expires_at: float | None = None

    def __post_init__(self) -> None:
        if (self.path is None) == (self.outcome is None):
            raise ValueError("a cache entry holds either a path or an outcome")

    @property
    def is_negative(self) -> bool:
        return self.outcome is not None


@dataclass(frozen=True, slots=True)
class _Incoming:
    """A finished file to move into the cache (see `_FileDisk.store`)."""

    path: Path
    size: int


class _FileDisk(diskcache.Disk):  # type: ignore[misc]
    """Stores `_Incoming` files by renaming them in; fetches files as paths."""

    def __init__(self, directory: str, **kwargs: Any) -> None:
        super().__init__(directory, **kwargs)
        self._root = directory

    def store(self, value: Any, read: bool, key: Any = UNKNOWN) -> tuple[int, int, str | None, Any]:
        if not isinstance(value, _Incoming):
            return super().store(value, read, key=key)  # type: ignore[no-any-return]
        filename, full_path = self.filename(key, value)
        for attempt in range(10):
            try:
                os.makedirs(os.path.dirname(full_path), exist_ok=True)
                os.replace(value.path, full_path)
                break
            except FileNotFoundError:
                # Another process's cull may remove the (empty) directories at any moment:
                # diskcache's `remove` deletes empty parents too.
                if attempt == 9 or not value.path.exists():
                    raise
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                try:
                    shutil.copyfile(value.path, full_path)
                except BaseException:
                    Path(full_path).unlink(missing_ok=True)
                    raise
                value.path.unlink()
                break
        return value.size, MODE_BINARY, filename, None

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == MODE_BINARY and read and filename is not None:
            return Path(self._root, filename)
        return super().fetch(mode, filename, value, read)


class CacheStore:
    """One size-capped cache directory; blocking (call it through `asyncio.to_thread`).

    `max_bytes=None` keeps the cap stored in the directory by whoever opened it last
    (diskcache's 1 GiB for a new one): what `symbolicator cache` uses without settings.
    """

    def __init__(self, directory: Path, max_bytes: int | None, name: str) -> None:
        self.directory = Path(directory)
        self.name = name
        self.temp_dir = self.directory / "tmp"
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        # cull_limit=0: diskcache would evict ten entries at a time on set; `_cull` evicts just enough.
        settings: dict[str, Any] = {"eviction_policy": "least-recently-used", "cull_limit": 0}
        if max_bytes is not None:
            settings["size_limit"] = max_bytes
        self._cache = diskcache.Cache(str(self.directory), timeout=_DB_TIMEOUT, disk=_FileDisk, **settings)
        self.max_bytes: int = int(self._cache.size_limit)
        self._lock = threading.Lock()
        self._used: set[str] = set()
        self._verified: OrderedDict[str, tuple[FileState, str]] = OrderedDict()
        self._warned_at = -60.0
        self._hits = 0
        self._misses = 0
        self.locks = KeyLocks(self.directory / "locks")
        self._remove_orphaned_temp_files()

    def __reduce__(self) -> tuple[Any, ...]:
        return (CacheStore, (self.directory, self.max_bytes, self.name))

    def __repr__(self) -> str:
        return f"CacheStore({str(self.directory)!r}, max_bytes={self.max_bytes}, name={self.name!r})"

    def get(self, key: str, counted: bool = True, trusted: FileState | None = None) -> CacheEntry | None:
        """The entry at `key`, or None (missing, expired, or its file gone or damaged).

        `counted=False` leaves the hit/miss figures alone: a second look at a key just
        counted (`get_or_compute` looks again once it holds the key's lock).
        `trusted`: the state in which an earlier process verified this entry's file (the
        offline commands keep it between runs); a file still in exactly that state is not
        hashed again, as within one process. Any other state is hashed as usual.
        """
        try:
            value, expire_time, tag = self._cache.get(key, read=True, expire_time=True, tag=True, retry=True)
        except sqlite3.OperationalError as exc:
            self._warn_degraded(f"cannot record accesses ({exc}); reading without them")
            value, expire_time, tag = self._peek(key)
        entry: CacheEntry | None = None
        if tag == _NEGATIVE_TAG and isinstance(value, str):
            try:
                entry = CacheEntry(outcome=Outcome(value), expires_at=expire_time)
            except ValueError:
                self._discard(key, None)
        elif isinstance(value, Path):
            if self._intact(value, tag, trusted):
                entry = CacheEntry(path=value)
            else:
                log.warning("cache %s: dropping damaged entry %s (%s)", self.name, key, value)
                self._discard(key, value)
        elif value is not None:
            self._discard(key, None)
        if counted:
            with self._lock:
                if entry is None:
                    self._misses += 1
                else:
                    self._hits += 1
        return entry

    def note_use(self, key: str) -> None:
        """Record a use of `key` served from memory (no database write now); the next cull
        counts it as an access, so entries hot in a memo are not evicted as if unused."""
        with self._lock:
            self._used.add(key)

    def put_file(self, key: str, src: Path) -> Path:
        """Move the finished file `src` in as the value of `key`; the cached path.

        `src` is consumed on success and left alone on failure. Best on the same
        file system as the cache (see `temp_path`): then it is a rename.
        """
        src = Path(src)
        size = src.stat().st_size
        self._check_fits(size)
        return self._put(key, src, size, file_crc(src))

    def put_bytes(self, key: str, data: bytes) -> Path:
        """Store `data` (a small value) as a file; the cached path."""
        self._check_fits(len(data))
        with self._writing(key):
            path = self.temp_path()
            try:
                path.write_bytes(data)
                return self._put(key, path, len(data), zlib.crc32(data))
            finally:
                path.unlink(missing_ok=True)

    def _put(self, key: str, src: Path, size: int, crc: int) -> Path:
        with self._writing(key), self._making_room():
            self._cull(reserve=size + _ROW_BYTES)
            self._cache.set(key, _Incoming(src, size), tag=file_tag(size, crc), retry=True)
            stored = self._stored(key)
        self._remember_intact(stored, file_tag(size, crc))
        return stored

    @contextmanager
    def _writing(self, key: str) -> Iterator[None]:
        """Disk errors of a write become `CacheWriteFailed` (cause kept); the caller answers without caching."""
        try:
            yield
        except (sqlite3.OperationalError, diskcache.Timeout) as exc:
            raise CacheWriteFailed(f"the {self.name} cache cannot store {key!r}: {exc}") from exc
        except OSError as exc:
            if isinstance(exc, FileNotFoundError):
                raise
            raise CacheWriteFailed(f"the {self.name} cache cannot store {key!r}: {exc}") from exc

    def set_negative(self, key: str, outcome: Outcome, expire: float | None = None) -> CacheEntry:
        """Remember that `key` has no content, for `expire` seconds (default by outcome)."""
        if not isinstance(outcome, Outcome):
            raise TypeError(f"only an Outcome can be cached, not {outcome!r}")
        ttl = NEGATIVE_TTL.get(outcome, DEFAULT_NEGATIVE_TTL) if expire is None else float(expire)
        now = time.time()
        try:
            with self._writing(key):
                self._cache.set(key, outcome.value, expire=ttl, tag=_NEGATIVE_TAG, retry=True)
        except CacheWriteFailed as exc:
            log.warning("%s; the %s outcome is not remembered", exc, outcome.value)
        return CacheEntry(outcome=outcome, expires_at=now + ttl)

    def delete(self, key: str) -> bool:
        return bool(self._cache.delete(key, retry=True))

    def temp_path(self, suffix: str = "") -> Path:
        """A new empty file beside the cache, for a value being produced.

        Pass it to `put_file` when done (a rename) or delete it; `prune` removes
        temp files older than `TEMP_MAX_AGE`.
        """
        with self._writing("a temp file"):
            fd, name = tempfile.mkstemp(prefix=f"{self.name}-{os.getpid()}-", suffix=suffix, dir=self.temp_dir)
        os.close(fd)
        return Path(name)

    def stats(self) -> dict[str, Any]:
        """Live entries, bytes on disk (files + index, what the cap bounds), hits/misses of this process."""
        # diskcache has no public count by tag; this read-only query uses its connection.
        row = self._cache._sql(
            "SELECT COUNT(*), COALESCE(SUM(tag = ?), 0) FROM Cache"
            " WHERE expire_time IS NULL OR expire_time > ?",
            (_NEGATIVE_TAG, time.time()),
        ).fetchone()
        with self._lock:
            hits, misses = self._hits, self._misses
        return {
            "name": self.name,
            "directory": str(self.directory),
            "entries": int(row[0]),
            "negative_entries": int(row[1]),
            "bytes": int(self._cache.volume()),
            "max_bytes": self.max_bytes,
            "hits": hits,
            "misses": misses,
        }

    def prune(self, everything: bool = False) -> dict[str, Any]:
        """Drop expired entries and cull to the cap, or (`everything`) drop all entries.

        Temp files older than `TEMP_MAX_AGE` go too (younger ones may be in use).
        """
        before = self.stats()
        if everything:
            removed = self._cache.clear(retry=True)
        else:
            removed = self._cull()
        temp_removed = self._remove_old_temp_files()
        after = self.stats()
        return {
            "name": self.name,
            "removed_entries": int(removed),
            "removed_temp_files": temp_removed,
            "entries": after["entries"],
            "bytes_before": before["bytes"],
            "bytes": after["bytes"],
            "max_bytes": self.max_bytes,
        }

    def close(self) -> None:
        self._cache.close()

    def _check_fits(self, size: int) -> None:
        index_bytes = int(self._cache.volume()) - int(self._cache.reset("size"))
        if size > self.max_bytes - index_bytes:
            raise EntryTooLarge(
                f"{size} bytes do not fit in the {self.name} cache ({self.max_bytes} bytes); raise its size limit"
            )

    @contextmanager
    def _making_room(self) -> Iterator[None]:
        """Writers of every process take turns to make room and move their file in, so the
        folder never holds more than the cap, not even for a moment per concurrent writer."""
        with open(self.directory / ".space.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _cull(self, reserve: int = 0) -> int:
        """Drop expired entries, then least-recently-used ones until `reserve` more bytes fit under the cap."""
        removed = int(self._cache.expire(retry=True))
        with self._lock:
            used, self._used = self._used, set()
        for key in used:
            self._cache.get(key, retry=True)  # moves it to the front of the LRU
        while (excess := int(self._cache.volume()) + reserve - self.max_bytes) > 0:
            # diskcache has no public "oldest keys" call; `key` is the plain str for str keys.
            rows = self._cache._sql(
                "SELECT key, size FROM Cache WHERE raw = 1 ORDER BY access_time LIMIT 100"
            ).fetchall()
            if not rows:
                break
            for lru_key, size in rows:
                if self._cache.delete(lru_key, retry=True):
                    removed += 1
                excess -= size
                if excess <= 0:
                    break
        return removed

    def _stored(self, key: str) -> Path:
        self._cull()
        value = self._cache.get(key, read=True, retry=True)
        if not isinstance(value, Path):
            raise EntryTooLarge(f"{key!r} was evicted from the {self.name} cache as soon as it was stored")
        return value

    def _warn_degraded(self, message: str) -> None:
        """Once a minute at most: a full disk would otherwise log once per request."""
        now = time.monotonic()
        with self._lock:
            if now - self._warned_at < 60.0:
                return
            self._warned_at = now
        log.warning("cache %s: %s", self.name, message)

    def _peek(self, key: str) -> tuple[Any, float | None, Any]:
        """(value, expire time, tag) read without a transaction: no access time recorded."""
        db_key, raw = self._cache._disk.put(key)
        rows = self._cache._sql(
            "SELECT expire_time, tag, mode, filename, value FROM Cache"
            " WHERE key = ? AND raw = ? AND (expire_time IS NULL OR expire_time > ?)",
            (db_key, raw, time.time()),
        ).fetchall()
        if not rows:
            return None, None, None
        expire_time, tag, mode, filename, db_value = rows[0]
        try:
            return self._cache._disk.fetch(mode, filename, db_value, True), expire_time, tag
        except OSError:
            return None, None, None

    def _intact(self, path: Path, tag: Any, trusted: FileState | None = None) -> bool:
        """The file is the one stored: size and CRC-32 as tagged (hashed once per process and file state)."""
        if not isinstance(tag, str) or not tag.startswith("crc32:"):
            return False
        state = FileState.of(path)
        if state is None:
            return False
        if trusted is not None and state == trusted and tag.split(":")[1] == str(state.size):
            self._remember(path, state, tag)
            return True
        with self._lock:
            if self._verified.get(str(path)) == (state, tag):
                self._verified.move_to_end(str(path))
                return True
        try:
            _, size, crc = tag.split(":")
            if state.size != int(size) or file_crc(path) != int(crc, 16):
                return False
        except (OSError, ValueError):
            return False
        self._remember(path, state, tag)
        return True

    def _remember_intact(self, path: Path, tag: str) -> None:
        """A file just written with `tag`: trusted in this process until it changes."""
        state = FileState.of(path)
        if state is not None:
            self._remember(path, state, tag)

    def _remember(self, path: Path, state: FileState, tag: str) -> None:
        with self._lock:
            self._verified[str(path)] = (state, tag)
            self._verified.move_to_end(str(path))
            while len(self._verified) > _VERIFIED_MAX:
                self._verified.popitem(last=False)

    def _discard(self, key: str, path: Path | None) -> None:
        """Delete `key` if it still holds `path` (another process may have replaced it).

        On a disk that refuses writes the entry stays, and is refused again on every read.
        """
        if path is not None:
            with self._lock:
                self._verified.pop(str(path), None)
        try:
            with self._cache.transact(retry=True):
                current = self._cache.get(key, read=True, retry=True)
                if path is None or current == path:
                    self._cache.delete(key, retry=True)
        except sqlite3.OperationalError as exc:
            log.warning("cache %s: cannot drop %s (%s)", self.name, key, exc)

    def _remove_orphaned_temp_files(self) -> None:
        """Temp files of `temp_path` whose process is gone: what a crash mid-write left."""
        prefix = f"{self.name}-"
        for entry in os.scandir(self.temp_dir):
            pid = entry.name[len(prefix):].split("-", 1)[0] if entry.name.startswith(prefix) else ""
            if pid.isdigit() and not process_alive(int(pid)):
                try:
                    os.unlink(entry.path)
                except OSError:
                    pass

    def _remove_old_temp_files(self) -> int:
        cutoff = time.time() - TEMP_MAX_AGE
        removed = 0
        for entry in os.scandir(self.temp_dir):
            try:
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


@dataclass(frozen=True)
class Caches:
    """The two budgets under one root: `downloads/` and `derived/`; and the shared cache
    (`caching/shared.py`) in front of conversions, when one is configured."""

    root: Path
    downloads: CacheStore
    derived: CacheStore
    shared: SharedCache | None = None

    @classmethod
    def open(
        cls, cache_dir: Path, downloads_max_bytes: int | None, derived_max_bytes: int | None,
        shared: SharedCache | None = None,
    ) -> Caches:
        root = Path(cache_dir)
        return cls(
            root=root,
            downloads=CacheStore(root / "downloads", downloads_max_bytes, "downloads"),
            derived=CacheStore(root / "derived", derived_max_bytes, "derived"),
            shared=shared,
        )

    def stores(self) -> tuple[CacheStore, CacheStore]:
        return (self.downloads, self.derived)

    def close(self) -> None:
        for store in self.stores():
            store.close()
