"""The converted-file cache of the offline commands (`resolve`, `resolve-js`, `symbolicate`).

Converting a big debug file or source map takes seconds; looking an address up in
the converted file takes microseconds. So the offline commands keep what they
convert, as the service does, in the service's own machinery: a size-capped LRU
`CacheStore` whose keys carry the format version (`keys.cache_key`). It lives in
`derived/` under `--cache-dir` (default `$XDG_CACHE_HOME/symbolicator`, else
`~/.cache/symbolicator`), the layout `symbolicator cache stats|prune` reads.

An entry is named by the identity of its inputs on disk (real path, device, inode,
size, modification and change times), not by their content: a second run on the
same file must answer in a fraction of a second whatever the file's size, and
hashing gigabytes would not. For the same reason the converted file is not
hashed again on every run: `CacheStore` checks each file's CRC once per process
and then trusts it while its inode, size and times stay the same; a companion
entry (`<kind>-state`) carries that verified state to the next run, which passes
it to `CacheStore.get(trusted=…)`. Any write to an input changes its ctime, so an edited
or rebuilt file is converted again. `--no-cache` converts in memory and writes
nothing. A cache that cannot be opened or written (read-only home, full disk) is
reported once on stderr and the command goes on without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symbolicator.caching.store import CacheStore, FileState

DEFAULT_MAX_SIZE = "10 GiB"  # the service's `cache.derived_max_bytes` default
DEFAULT_MAX_BYTES = 10 * 1024**3


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """`--cache-dir`, `--cache-size` and `--no-cache`, the same on every offline command."""
    group = parser.add_argument_group("converted-file cache")
    group.add_argument("--cache-dir", metavar="DIR",
                       help="where converted files are kept (default: $XDG_CACHE_HOME/symbolicator, "
                       "else ~/.cache/symbolicator)")
    group.add_argument("--cache-size", metavar="SIZE", default=DEFAULT_MAX_SIZE,
                       help="size cap of the cache; least recently used entries go first (default: %(default)s)")
    group.add_argument("--no-cache", action="store_true", help="convert in memory and keep nothing")


def default_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "symbolicator"


def identity(paths: Sequence[Path | None], *extra: str) -> str:
    """A digest of where and which version of each file this is (see the module docstring)."""
    h = hashlib.sha256()
    for path in paths:
        if path is None:
            h.update(b"-\0")
            continue
        st = os.stat(path)
        h.update(f"{os.path.realpath(path)}\0{st.st_dev}:{st.st_ino}:{st.st_size}:"
                 f"{st.st_mtime_ns}:{st.st_ctime_ns}\0".encode())
    for part in extra:
        h.update(part.encode() + b"\0")
    return h.hexdigest()


class OfflineCache:
    """Converted files by key, or conversions in memory when the cache is off or unusable."""

    def __init__(self, store: CacheStore | None, command: str) -> None:
        self.store = store
        self.command = command

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> OfflineCache:
        command = str(getattr(args, "command", "") or "").replace("_", "-")
        if getattr(args, "no_cache", False):
            return cls(None, command)
        size = getattr(args, "cache_size", DEFAULT_MAX_SIZE)
        max_bytes = DEFAULT_MAX_BYTES if size == DEFAULT_MAX_SIZE else _parse_size(size)
        root = Path(args.cache_dir) if getattr(args, "cache_dir", None) else default_dir()
        try:
            from symbolicator.caching.store import CacheStore

            return cls(CacheStore(root / "derived", max_bytes, "derived"), command)
        except Exception as exc:  # noqa: BLE001 - sqlite3, OSError: the cache is an optimisation
            _warn(command, f"cache {root} is unusable ({exc}); converting without it")
            return cls(None, command)

    def converted(self, kind: str, version: int, key_identity: str,
                  build: Callable[[], bytes | bytearray]) -> Path | bytes | bytearray:
        """The cached file of `kind` for these inputs, made by `build` on a miss; the bytes
        themselves when there is no cache (or it refused the write)."""
        if self.store is None:
            return build()
        from symbolicator import keys
        from symbolicator.errors import SymbolicatorError

        key = keys.cache_key(kind, version, key_identity)
        state_key = keys.cache_key(f"{kind}-state", version, key_identity)
        trusted = self._trusted(state_key)
        entry = self.store.get(key, trusted=trusted)
        if entry is not None and entry.path is not None:
            self._remember(state_key, entry.path, trusted)
            return entry.path
        data = build()
        try:
            path = self.store.put_bytes(key, bytes(data))
        except (OSError, SymbolicatorError) as exc:
            _warn(self.command, f"could not keep the converted file in {self.store.directory} ({exc})")
            return data
        self._remember(state_key, path, None)
        return path

    def _trusted(self, state_key: str) -> FileState | None:
        """The state in which a previous run verified the entry's file (see `CacheStore.get`)."""
        from symbolicator.caching.store import FileState

        assert self.store is not None
        entry = self.store.get(state_key)
        if entry is None or entry.path is None:
            return None
        try:
            return FileState(**json.loads(entry.path.read_bytes()))
        except (OSError, ValueError, TypeError):
            return None

    def _remember(self, state_key: str, path: Path, trusted: FileState | None) -> None:
        """Keep the verified file's state for the next run, so it is not hashed again (a few bytes)."""
        from symbolicator.caching.store import FileState
        from symbolicator.errors import SymbolicatorError

        assert self.store is not None
        state = FileState.of(path)
        if state is None or state == trusted:
            return
        try:
            self.store.put_bytes(state_key, json.dumps(dataclasses.asdict(state)).encode())
        except (OSError, SymbolicatorError):
            pass  # only an optimisation: the next run hashes the file instead

    def close(self) -> None:
        if self.store is not None:
            self.store.close()


def _parse_size(text: str) -> int:
    """`--cache-size` as the settings read sizes (`config.parse_size`, imported only when the flag is given)."""
    from symbolicator.config import parse_size
    from symbolicator.errors import ConfigError, UsageError

    try:
        return parse_size(text, "--cache-size")
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def _warn(command: str, message: str) -> None:
    print(f"symbolicator {command}: warning: {message}", file=sys.stderr)
