"""Bytes at keys: the `Storage` protocol and its two backends (see `base.py`).

`S3Storage` is imported on first use (PEP 562): boto3 costs half a second, and the
offline commands and the local cache, which reach this package through
`storage.local`, never talk to S3.
"""

from typing import Any

from symbolicator.storage.base import ObjectInfo, Storage, check_key
from symbolicator.storage.local import LocalStorage

__all__ = ["LocalStorage", "ObjectInfo", "S3Storage", "Storage", "check_key"]


def __getattr__(name: str) -> Any:
    if name == "S3Storage":
        from symbolicator.storage.s3 import S3Storage

        return S3Storage
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
