"""The parts of a running service that every request kind uses, named once.

`Services` makes them once; each request kind's dependencies (`NativeDeps`, `JsDeps`) extend
them with what only that kind keeps (its memos, its counters), so a lookup reads `deps.caches`
whichever kind it serves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from symbolicator.artifacts.indexes import IndexReader
from symbolicator.caching import Caches, Coalescer
from symbolicator.config import Settings
from symbolicator.fetch import Fetcher
from symbolicator.service.workers import WorkerPool
from symbolicator.storage.base import Storage


@dataclass(frozen=True)
class ServiceParts:
    settings: Settings
    storage: Storage
    index_reader: IndexReader
    caches: Caches
    coalescer: Coalescer
    workers: WorkerPool
    fetcher: Fetcher | None

    def shared(self) -> dict[str, Any]:
        """These parts as keyword arguments, to build a request kind's deps (a subclass) from them."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(ServiceParts)}
