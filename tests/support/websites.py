"""Real loopback "websites" that misbehave on purpose, for testing outbound fetches.

The fetch client and the JS scraper are only trusted once they have met real
sockets that are slow, fail, redirect in circles or send far too much, so these
are real servers on 127.0.0.1 (or ::1) on free ports, never mocks.

`Website` is an aiohttp server whose routes you script before or while it runs::

    async with Website() as site:
        site.add_body("/app.js", b"...", content_type="application/javascript",
                      headers={"SourceMap": "app.js.map"})
        site.add_status("/gone.js.map", 404)
        site.add_redirect("/loop", "/loop")
        site.add_drip("/slow.js", b"x" * 100, first_byte_delay_s=5)   # past a read timeout
        site.add_hang("/never")                                       # headers never come
        site.add_huge("/huge.map", 70 * 1024 * 1024, chunked=True)    # streamed, not held
        site.add_gate("/held", gate)                                  # answers when gate is set
        url = site.url("/app.js")                                     # http://127.0.0.1:PORT/app.js

What it counts, for assertions: `accepted` (TCP connections accepted, so a
test can prove a refused fetch never reached the socket), `requests` (paths in
arrival order), `in_flight` and `max_in_flight` (concurrent requests being
handled). Routes are matched on the exact path (query ignored); an unknown path
is a 404.

`SilentListener` is a raw TCP listener that accepts and then never says a word
(a server that hangs before any HTTP), with the same `accepted` counter.
`FullBacklogListener` never accepts and has its accept queue filled, so Linux
drops further SYNs: a connect that hangs, for connect timeouts on loopback.

Both shut down quickly: handlers still running (hung, dripping) are cancelled.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MiB = 1024 * 1024


class Website:
    """A scripted HTTP server on `host` (default 127.0.0.1), on a free port."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.accepted = 0
        self.requests: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self._routes: dict[str, Handler] = {}
        self._runner: web.AppRunner | None = None
        self._server: asyncio.AbstractServer | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=0.2, access_log=None)
        await self._runner.setup()
        factory = self._runner.server
        assert factory is not None

        def counting_factory() -> asyncio.BaseProtocol:
            self.accepted += 1
            return factory()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(counting_factory, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(request.path)
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            handler = self._routes.get(request.path)
            if handler is None:
                return web.Response(status=404, text="no such route")
            return await handler(request)
        finally:
            self.in_flight -= 1

    def add(self, path: str, handler: Handler) -> None:
        """Any aiohttp handler, for behaviour the helpers below do not cover."""
        self._routes[path] = handler

    def add_body(
        self,
        path: str,
        body: bytes,
        *,
        status: int = 200,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(body=body, status=status, content_type=content_type, headers=headers)

        self.add(path, handler)

    def add_status(self, path: str, status: int, text: str = "") -> None:
        self.add_body(path, (text or f"status {status}").encode(), status=status, content_type="text/plain")

    def add_redirect(self, path: str, location: str, status: int = 302) -> None:
        """`location` is sent as is: relative paths and absolute URLs both work."""

        async def handler(request: web.Request) -> web.StreamResponse:
            return web.Response(status=status, headers={"Location": location})

        self.add(path, handler)

    def add_drip(
        self, path: str, body: bytes, *, first_byte_delay_s: float = 0.0, interval_s: float = 0.0, piece: int = 1
    ) -> None:
        """Headers at once, then `body` in `piece`-byte writes `interval_s` apart, after `first_byte_delay_s`."""

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/javascript"})
            resp.content_length = len(body)
            await resp.prepare(request)
            await asyncio.sleep(first_byte_delay_s)
            for i in range(0, len(body), piece):
                await resp.write(body[i : i + piece])
                await asyncio.sleep(interval_s)
            await resp.write_eof()
            return resp

        self.add(path, handler)

    def add_hang(self, path: str) -> None:
        """Read the request, then never answer (cancelled when the site stops)."""

        async def handler(request: web.Request) -> web.StreamResponse:
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        self.add(path, handler)

    def add_gate(self, path: str, gate: asyncio.Event, body: bytes = b"ok") -> None:
        """Answer only once `gate` is set: lets a test hold requests in flight."""

        async def handler(request: web.Request) -> web.StreamResponse:
            await gate.wait()
            return web.Response(body=body)

        self.add(path, handler)

    def add_huge(self, path: str, size: int, *, chunked: bool = False, block: int = MiB) -> None:
        """`size` bytes of `x`, generated block by block (never held whole in memory).

        With `chunked=False` a `Content-Length` is sent (a client can refuse up
        front); with `chunked=True` none is, so the client must count.
        """
        data = b"x" * block

        async def handler(request: web.Request) -> web.StreamResponse:
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})
            if chunked:
                resp.enable_chunked_encoding()
            else:
                resp.content_length = size
            await resp.prepare(request)
            sent = 0
            try:
                while sent < size:
                    n = min(block, size - sent)
                    await resp.write(data[:n] if n < block else data)
                    sent += n
                await resp.write_eof()
            except (ConnectionError, RuntimeError):
                pass
            return resp

        self.add(path, handler)


class SilentListener:
    """Accepts TCP connections and never sends a byte; counts what it accepted."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.accepted = 0
        self._sock: socket.socket | None = None
        self._server: asyncio.AbstractServer | None = None
        self._writers: list[asyncio.StreamWriter] = []

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> Self:
        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.accepted += 1
            self._writers.append(writer)

        self._server = await asyncio.start_server(on_client, self.host, 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


class FullBacklogListener:
    """A listening socket that never accepts, its backlog filled: connects hang."""

    def __init__(self, host: str = "127.0.0.1", fillers: int = 8) -> None:
        self.host = host
        self.fillers = fillers
        self.port = 0
        self._socks: list[socket.socket] = []

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def __aenter__(self) -> Self:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.bind((self.host, 0))
        server.listen(0)
        self.port = server.getsockname()[1]
        self._socks.append(server)
        for _ in range(self.fillers):
            client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            client.setblocking(False)
            try:
                client.connect((self.host, self.port))
            except BlockingIOError:
                pass
            self._socks.append(client)
        await asyncio.sleep(0.05)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for sock in self._socks:
            sock.close()


def ipv6_loopback_available() -> bool:
    """Whether this machine can listen on ::1 (containers often cannot)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False
