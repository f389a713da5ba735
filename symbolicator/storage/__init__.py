"""Bytes at keys: the `Storage` protocol and its two backends (see `base.py`)."""

from symbolicator.storage.base import ObjectInfo, Storage, check_key
from symbolicator.storage.local import LocalStorage
from symbolicator.storage.s3 import S3Storage

__all__ = ["LocalStorage", "ObjectInfo", "S3Storage", "Storage", "check_key"]
