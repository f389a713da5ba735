"""The on-disk caches (downloads + derived, see `store`) and per-key coalescing (`coalesce`)."""

from symbolicator.caching.coalesce import Coalescer, conversion_output, get_or_compute
from symbolicator.caching.store import NEGATIVE_TTL, CacheEntry, Caches, CacheStore
from symbolicator.errors import EntryTooLarge

__all__ = [
    "NEGATIVE_TTL",
    "CacheEntry",
    "CacheStore",
    "Caches",
    "Coalescer",
    "conversion_output",
    "EntryTooLarge",
    "get_or_compute",
]
