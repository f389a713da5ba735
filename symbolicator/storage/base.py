"""The `Storage` protocol: bytes at keys, with nothing half-written ever visible.

Both backends (`LocalStorage` on `uploads/`, `S3Storage` via boto3) implement it
and pass one contract test. The methods are blocking on purpose: the service calls
them through `asyncio.to_thread`, the CLI calls them directly.

Keys are `/`-separated relative paths made by `symbolicator.keys`; a backend
refuses any key that could escape its root (`..`, absolute, backslash, NUL).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from symbolicator.errors import StorageError

ABSENT = "absent"


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """What `head` knows of a stored object; `size` in bytes."""

    key: str
    size: int


@runtime_checkable
class Storage(Protocol):
    def head(self, key: str) -> ObjectInfo | None:
        """The object's info, or None when the key does not exist."""
        ...

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        """The whole object (small ones: JSON, indexes). ObjectNotFound when absent."""
        ...

    def get_to_path(self, key: str, path: Path) -> ObjectInfo:
        """Stream the object into `path` (written whole or not at all). ObjectNotFound when absent."""
        ...

    def put_bytes(self, key: str, data: bytes | bytearray) -> None:
        """Publish `data` at `key` atomically (readers see the old object or the new one)."""
        ...

    def put_file(self, key: str, path: Path) -> None:
        """Publish the file at `path` atomically, streaming (never whole in memory)."""
        ...

    def compose(self, key: str, sources: Sequence[str]) -> None:
        """Publish at `key` the concatenation of the objects at `sources`, atomically.

        Server-side where the backend can (S3 multipart part copy), so an
        assembled upload need not travel through this process again.
        ObjectNotFound (and nothing at `key`) when a source is missing.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the key; a missing key is not an error."""
        ...

    def list(self, prefix: str) -> Iterator[str]:
        """Every key starting with `prefix`, in lexicographic order."""
        ...

    def version(self, key: str) -> Hashable | None:
        """A marker that changes whenever the object at `key` appears, changes or goes, or None.

        Only a backend that can tell without a network call or a read answers
        (local storage: one stat, so the service may ask on its event loop);
        None means "ask the store itself" (S3). `ABSENT` is the marker of a key
        with no object.
        """
        ...


def check_key(key: str) -> str:
    """Refuse keys that could escape a backend's root."""
    if (
        not key
        or key.startswith("/")
        or "\\" in key
        or "\0" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
    ):
        raise StorageError(f"invalid storage key {key!r}", key)
    return key
