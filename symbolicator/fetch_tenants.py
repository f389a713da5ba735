"""Whose request an outbound fetch serves: one scope's share of the shared outbound client.

One `Fetcher` serves every tenant, so without this one tenant could spend what all of them
share: its frames could put a host on the deny list for everybody, its slow website could
hold every connection, and one small request naming thousands of URLs could make thousands
of outbound requests (a 244 KB body made 5,000). `JobRegistry.run` opens a `RequestFetches` for each
job in a context variable, which every task the job starts inherits, so the fetcher knows the
scope and the request without any caller passing them down:

- **the deny list** counts failures per scope and host (`HostDenyList` keyed by tenant);
- **concurrency**: at most `fetch.per_scope_concurrency` fetches at once per scope, and at
  most three quarters of a host's `per_host_concurrency` slots per scope, so another
  scope always finds the last quarter;
- **amplification**: each distinct URL is fetched once per request (a failure is answered
  again from memory), and at most `fetch.max_fetches_per_request` URLs are fetched per
  request; past that, `admit` names the setting and the frame fails with that reason.

Work outside a job (the CLI, tests calling the fetcher directly) has no `RequestFetches`
and is not limited here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from symbolicator.fetch import FetchError


@dataclass
class RequestFetches:
    """One request's outbound fetches: its scope, how many URLs it may still fetch, what failed."""

    scope: str
    limit: int
    count: int = 0
    failures: dict[str, FetchError] = field(default_factory=dict)

    def admit(self, url: str) -> str | None:
        """Count `url` as fetched by this request; the refusal text when the budget is spent."""
        if self.count >= self.limit:
            return (f"not fetched: this request already made {self.limit} outbound fetches "
                    f"(fetch.max_fetches_per_request)")
        self.count += 1
        return None


_CURRENT: ContextVar[RequestFetches | None] = ContextVar("request_fetches", default=None)


def current() -> RequestFetches | None:
    """The running job's fetches, or None outside a job."""
    return _CURRENT.get()


@contextlib.contextmanager
def fetches_for(scope: str, limit: int) -> Iterator[RequestFetches]:
    """Tasks created inside this block (a job's) fetch as `scope`, at most `limit` URLs in all."""
    fetches = RequestFetches(scope, limit)
    token = _CURRENT.set(fetches)
    try:
        yield fetches
    finally:
        _CURRENT.reset(token)
