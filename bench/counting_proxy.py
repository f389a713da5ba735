"""A counting reverse proxy on 127.0.0.1 in front of SeaweedFS's S3 gateway.

Issue 5 wants coalescing counted *at S3*, not only in the service's own
`/metrics`. SeaweedFS can export Prometheus counters (`-metricsPort`), but its
S3 counters are labelled by action and status (and bucket at most), never by
object key; and every native request reads a small debug-id index object from
the same bucket, so "GetObject: 201" could not tell 200 index reads and one
download from 199 index reads and two downloads. This proxy sits between the
service and SeaweedFS and sees every request with its key, so it can answer
"how many GETs of exactly this object, and how many of its bytes went out".
Counting bytes as well as requests keeps the figure honest if a download is
ever split into ranged parts: downloads = bytes sent ÷ object size.

It can also *hold* a request (`hold`): answer it only once a condition is true.
The coalescing bench and test hold the one download of a debug file until every
concurrent request has read its index, which makes "all N requests were waiting
while the download was in flight" a fact rather than a likely race.

It runs its own event loop in a daemon thread, so it keeps forwarding while the
caller blocks (starting the service, a synchronous test). Bodies are buffered per
request (S3 parts are at most a few MiB here) and responses streamed back.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiohttp
from aiohttp import web
from yarl import URL

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
                         "trailers", "transfer-encoding", "upgrade", "expect", "content-length"})
POLL_S = 0.005


@dataclass
class Hold:
    """Requests for `path` (of `method`, or any) wait until `until()` is true or `timeout_s` passed;
    `outcomes` says which."""

    path: str
    until: Callable[[], bool]
    timeout_s: float
    method: str | None = None
    outcomes: list[str] = field(default_factory=list)


class CountingProxy:
    """Forwards everything to `upstream`; counts requests per (method, path) and response bytes per path.

    Paths are as the S3 client sends them in path style: `/{bucket}/{key}`.
    """

    def __init__(self, upstream: str, host: str = "127.0.0.1") -> None:
        self.upstream = upstream.rstrip("/")
        self.host = host
        self.port = 0
        self._counts: Counter[tuple[str, str]] = Counter()
        self._bytes: Counter[tuple[str, str]] = Counter()
        self._holds: dict[str, Hold] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def count(self, path: str, method: str | None = None) -> int:
        """Requests for exactly `path` (any method unless given)."""
        with self._lock:
            return sum(n for (m, p), n in self._counts.items() if p == path and method in (None, m))

    def bytes_sent(self, path: str, method: str = "GET") -> int:
        """Response body bytes sent back for `method` requests of `path`."""
        with self._lock:
            return self._bytes[(method, path)]

    def requests_under(self, prefix: str, method: str | None = None) -> dict[str, int]:
        """Per path under `prefix`, the number of requests (any method unless given)."""
        out: Counter[str] = Counter()
        with self._lock:
            for (m, p), n in self._counts.items():
                if p.startswith(prefix) and method in (None, m):
                    out[p] += n
        return dict(out)

    def reset(self) -> None:
        """Forget the counts so far (e.g. the upload's PUTs before a burst)."""
        with self._lock:
            self._counts.clear()
            self._bytes.clear()

    def hold(self, path: str, until: Callable[[], bool], timeout_s: float = 60.0, method: str | None = None) -> Hold:
        """Hold every request for `path` (only `method` ones when given) until `until()` (polled in the
        proxy's thread) or the timeout."""
        rule = Hold(path, until, timeout_s, method)
        with self._lock:
            self._holds[path] = rule
        return rule

    def start(self) -> Self:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                runner = loop.run_until_complete(self._serve())
            except Exception as exc:  # noqa: BLE001 (re-raised in the caller's thread)
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            try:
                loop.run_forever()
            finally:
                loop.run_until_complete(self._shutdown(runner))
                loop.close()

        self._thread = threading.Thread(target=run, name="counting-proxy", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    async def _serve(self) -> web.AppRunner:
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0), auto_decompress=False,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            skip_auto_headers=("Content-Type", "Accept-Encoding", "User-Agent"))
        app = web.Application(client_max_size=1 << 30)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await runner.setup()
        site = web.TCPSite(runner, self.host, 0)
        await site.start()
        self.port = int(runner.addresses[0][1])
        return runner

    async def _shutdown(self, runner: web.AppRunner) -> None:
        await runner.cleanup()
        await self._session.close()

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        with self._lock:
            self._counts[(request.method, path)] += 1
            rule = self._holds.get(path)
        if rule is not None and rule.method in (None, request.method):
            await self._wait(rule)
        body = await request.read()
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        target = URL(self.upstream + request.raw_path, encoded=True)
        async with self._session.request(request.method, target, headers=headers, data=body or None,
                                         allow_redirects=False) as up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                if k.lower() not in _HOP_BY_HOP:
                    resp.headers.add(k, v)
            if "Content-Length" in up.headers:
                resp.content_length = int(up.headers["Content-Length"])
            await resp.prepare(request)
            sent = 0
            if request.method != "HEAD":
                async for chunk in up.content.iter_chunked(1 << 20):
                    await resp.write(chunk)
                    sent += len(chunk)
            await resp.write_eof()
        with self._lock:
            self._bytes[(request.method, path)] += sent
        return resp

    @staticmethod
    async def _wait(rule: Hold) -> None:
        deadline = time.monotonic() + rule.timeout_s
        while not rule.until():
            if time.monotonic() > deadline:
                rule.outcomes.append("timed out")
                return
            await asyncio.sleep(POLL_S)
        rule.outcomes.append("released")
