"""Serving the app with deadlines for slow clients and a cap on open connections.

aiohttp waits for a request's headers and body as long as the client keeps the
socket open, so 3,000 connections that each sent half a header, or 200 that trickle
a 50 MB body, held sockets and memory indefinitely. Three limits (`limits.*`):

- **`header_timeout_s`**: from the first byte of a request (or the connection's
  opening) to the end of its headers. Past it the connection is closed; no
  request was read, so there is nobody to answer.
- **`body_timeout_s`**: from the end of the headers to the end of the body. Past
  it the body read fails with `RequestTimeout` (408, the error middleware answers)
  and the connection closes after that answer, since the rest of the body is
  still on its way.
- **`max_connections`**: connections open at once; one more is closed as it
  arrives, before anything is read, so a flood of idle sockets costs a file
  descriptor each for a moment rather than a handler each for ever.

`run` replaces `web.run_app` for `serve`: the same runner, signals and cleanup,
with `GuardedServer` as the connection factory (aiohttp has no setting for either
deadline nor for the cap).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from symbolicator.config import LimitsSettings
from symbolicator.errors import RequestTimeout
from symbolicator.web.errors import Handler
from symbolicator.web.state import SETTINGS

_BODY_LATE = "symbolicator.body_late"


class GuardedHandler(RequestHandler):
    """aiohttp's connection handler with a header deadline and the connection cap."""

    __slots__ = ("_header_timer", "_limits")

    def __init__(self, manager: GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._limits = manager.limits
        self._header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        manager = self._manager
        if manager is not None and len(manager.connections) > self._limits.max_connections:
            self.force_close()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        waiting = self._waiter is not None and not self._waiter.done()
        before = self._request_count
        super().data_received(data)
        if self._request_count != before:
            self._disarm()
        elif self._header_timer is None and waiting:
            self._arm()  # the first bytes of the next request on a kept-alive connection

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self._loop.call_later(self._limits.header_timeout_s, self._headers_late)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if not self._messages:
            self.force_close()


class GuardedServer(web.Server):
    """`web.Server` whose connections are `GuardedHandler`s under `limits`."""

    limits: LimitsSettings

    def __call__(self) -> RequestHandler:
        return GuardedHandler(self, loop=self._loop, **self._kwargs)


class GuardedRunner(web.AppRunner):
    """`web.AppRunner` serving through `GuardedServer`."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer
        assert isinstance(server, GuardedServer)
        server.limits = self.app[SETTINGS].limits
        return server


@web.middleware
async def body_deadline_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Fail the body read after `limits.body_timeout_s`; the answer then closes the connection."""
    if not request.body_exists:
        return await handler(request)
    limits = request.app[SETTINGS].limits
    loop = asyncio.get_running_loop()

    def late() -> None:
        if not request.content.is_eof():
            request[_BODY_LATE] = True
            request.content.set_exception(RequestTimeout(
                f"the request body did not arrive within {limits.body_timeout_s:g} s (limits.body_timeout_s)"))

    timer = loop.call_later(limits.body_timeout_s, late)
    try:
        response = await handler(request)
    finally:
        timer.cancel()
    if request.get(_BODY_LATE):
        response.force_close()
    return response


def run(app: web.Application, sock: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    """Serve `app` on the bound `sock` until SIGINT/SIGTERM, as `web.run_app` does, through `GuardedRunner`."""
    asyncio.set_event_loop(loop)

    async def main() -> None:
        runner = GuardedRunner(app, handle_signals=True, access_log=None)
        await runner.setup()
        try:
            await web.SockSite(runner, sock).start()
            while True:
                await asyncio.sleep(3600)
        finally:
            await runner.cleanup()

    task = loop.create_task(main())
    try:
        loop.run_until_complete(task)
    except (web.GracefulExit, KeyboardInterrupt):
        pass
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, web.GracefulExit):
                loop.run_until_complete(task)
        pending = asyncio.all_tasks(loop)
        for t in pending:
            t.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
