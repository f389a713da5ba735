"""`LocalStorage`: the `Storage` protocol on a local folder (the embedded default `uploads/`).

An object lives at `root/<key>`. Publishing is the classic write-then-rename:
bytes go to a private temp file in `root/.tmp/` (same filesystem, so the rename
is atomic), the file is fsynced, then `os.replace` puts it at its key and the
parent folder is fsynced. A reader therefore sees the old object or the new one,
and a process killed mid-write leaves only a temp file, which the next
`LocalStorage` on that root removes.

Temp files are named `<pid>-<random>.part`; construction removes those whose
process is gone or that are older than an hour, so several processes (service
workers, the CLI) can share one root without deleting each other's writes.
The `.tmp` name is reserved: keys under it are refused and never listed.

`list` is exact lexicographic order without sorting everything: within a folder,
a sub-folder `d` sorts as `d/`, which is where all of its keys fall among its
siblings (see `_sort_name`).

Downloads (`get_to_path`) are not fsynced: their targets are cache files that
can be fetched again, and the rename alone keeps them whole for readers.
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from symbolicator.errors import ObjectNotFound, StorageError
from symbolicator.pids import process_alive
from symbolicator.storage.base import ABSENT, ObjectInfo, check_key

TMP_DIR = ".tmp"
COPY_CHUNK = 1 << 20
STALE_TMP_SECONDS = 3600


class LocalStorage:
    """Objects as files under `root`; see the module docstring for the write protocol."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._tmp = self.root / TMP_DIR
        try:
            self._tmp.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create storage folder {self._tmp}: {e}") from e
        self._clean_stale_temp_files()

    def __repr__(self) -> str:
        return f"LocalStorage({str(self.root)!r})"

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as e:
            raise StorageError(f"cannot stat {key!r}: {e}", key) from e
        if not path.is_file():
            return None
        return ObjectInfo(key, st.st_size)

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        with self._open(key) as f:
            size = os.fstat(f.fileno()).st_size
            if max_bytes is not None and size > max_bytes:
                raise StorageError(f"object {key!r} is {size} bytes, over the limit of {max_bytes}", key)
            try:
                data = f.read() if max_bytes is None else f.read(max_bytes + 1)
            except OSError as e:
                raise StorageError(f"cannot read {key!r}: {e}", key) from e
        if max_bytes is not None and len(data) > max_bytes:
            raise StorageError(f"object {key!r} is over the limit of {max_bytes} bytes", key)
        return data

    def get_to_path(self, key: str, path: Path) -> ObjectInfo:
        path = Path(path)
        with self._open(key) as src:
            try:
                size = _publish(src, path, durable=False)
            except OSError as e:
                raise StorageError(f"cannot copy {key!r} to {path}: {e}", key) from e
        return ObjectInfo(key, size)

    def put_bytes(self, key: str, data: bytes | bytearray) -> None:
        with self._writing(key, "write") as out:
            out.write(data)

    def put_file(self, key: str, path: Path) -> None:
        with self._writing(key, f"store {path} at") as out, open(path, "rb") as src:
            shutil.copyfileobj(src, out, COPY_CHUNK)

    def compose(self, key: str, sources: Sequence[str]) -> None:
        with self._writing(key, "compose") as out:
            for src in sources:
                with self._open(src) as f:
                    shutil.copyfileobj(f, out, COPY_CHUNK)

    @contextmanager
    def _writing(self, key: str, what: str) -> Iterator[BinaryIO]:
        """A temp file to fill; published at `key` (fsync + rename) only if the filling succeeds."""
        target = self._path(key)
        tmp = self._temp_path()
        try:
            with open(tmp, "wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            self._replace(tmp, target)
        except BaseException as e:
            with suppress(OSError):
                tmp.unlink()
            if isinstance(e, OSError):
                raise StorageError(f"cannot {what} {key!r}: {e}", key) from e
            raise

    def delete(self, key: str) -> None:
        try:
            self._path(key).unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            pass
        except OSError as e:
            raise StorageError(f"cannot delete {key!r}: {e}", key) from e

    def list(self, prefix: str) -> Iterator[str]:
        if prefix:
            check_key(prefix + "x")
        folder, _, name_prefix = prefix.rpartition("/")
        base = self.root / folder if folder else self.root
        return self._walk(base, folder + "/" if folder else "", name_prefix)

    def version(self, key: str) -> Hashable | None:
        """Inode, mtime and size: every publish is a rename, so a new object is a new inode."""
        try:
            st = os.stat(self._path(key))
        except (FileNotFoundError, NotADirectoryError):
            return ABSENT
        except OSError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _walk(self, folder: Path, key_prefix: str, name_prefix: str) -> Iterator[str]:
        try:
            with os.scandir(folder) as it:
                entries = [e for e in it if e.name.startswith(name_prefix)]
        except (FileNotFoundError, NotADirectoryError):
            return
        except OSError as e:
            raise StorageError(f"cannot list {key_prefix or '/'}: {e}") from e
        if not key_prefix:
            entries = [e for e in entries if e.name != TMP_DIR]
        for entry, is_dir in sorted(
            ((e, e.is_dir(follow_symlinks=False)) for e in entries),
            key=lambda pair: _sort_name(pair[0].name, pair[1]),
        ):
            if is_dir:
                yield from self._walk(Path(entry.path), f"{key_prefix}{entry.name}/", "")
            elif entry.is_file(follow_symlinks=False):
                yield key_prefix + entry.name

    def _path(self, key: str) -> Path:
        check_key(key)
        if key.split("/", 1)[0] == TMP_DIR:
            raise StorageError(f"invalid storage key {key!r}: {TMP_DIR}/ is reserved", key)
        return self.root / key

    def _open(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as e:
            raise ObjectNotFound(f"no object at {key!r}", key) from e
        except OSError as e:
            raise StorageError(f"cannot open {key!r}: {e}", key) from e

    def _temp_path(self) -> Path:
        return self._tmp / f"{os.getpid()}-{uuid.uuid4().hex}.part"

    def _replace(self, tmp: Path, target: Path) -> None:
        """Publish `tmp` at `target`, creating parent folders, then make the rename durable."""
        try:
            os.replace(tmp, target)
        except FileNotFoundError:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, target)
        _fsync_dir(target.parent)

    def _clean_stale_temp_files(self) -> None:
        now = time.time()
        for entry in os.scandir(self._tmp):
            pid_text = entry.name.split("-", 1)[0]
            try:
                old = now - entry.stat(follow_symlinks=False).st_mtime > STALE_TMP_SECONDS
                if old or not (pid_text.isdigit() and process_alive(int(pid_text))):
                    os.unlink(entry.path)
            except FileNotFoundError:
                pass
            except IsADirectoryError:
                shutil.rmtree(entry.path, ignore_errors=True)


def _sort_name(name: str, is_dir: bool) -> str:
    """A folder's keys all start with `name/`, so among its siblings they sort exactly there."""
    return name + "/" if is_dir else name


def _publish(src: BinaryIO, target: Path, durable: bool) -> int:
    """Copy `src` to a temp file beside `target`, then rename it into place; the byte count."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex}.part")
    try:
        with open(tmp, "wb") as out:
            shutil.copyfileobj(src, out, COPY_CHUNK)
            size = out.tell()
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            tmp.unlink()
        raise
    return size


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
