"""Request-side hardening (issue 15, items 7, 8, 11): bodies of many empty entries, slow clients, odd names.

Everything runs against the real service process over real loopback sockets. The numbers
are small so CI stays quick: a 1 s header deadline, a 2 s body deadline, 12 connections,
100 stack traces and 100 modules. Each test names the setting the answer must quote.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests

from tests.support.service import ServiceProcess
from tests.support.native_service import TOKEN, native_settings

HEADER_S = 1.0
BODY_S = 2.0
MAX_CONNECTIONS = 12
MAX_TRACES = 100
MAX_MODULES = 100


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("hardening")
    settings = native_settings(root, scraping={"enabled": False}, limits={
        "header_timeout_s": HEADER_S, "body_timeout_s": BODY_S, "max_connections": MAX_CONNECTIONS,
        "max_stacktraces_per_request": MAX_TRACES, "max_modules_per_request": MAX_MODULES})
    with ServiceProcess(root, settings) as service:
        yield service


def healthy(svc: ServiceProcess) -> None:
    assert requests.get(f"{svc.url}/healthcheck", timeout=10).text == "ok"


def connect(svc: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", svc.port), timeout=10)


def closed_within(sock: socket.socket, seconds: float) -> tuple[bool, bytes]:
    """Whether the server closed `sock` within `seconds`, and what it sent before that."""
    sock.settimeout(0.05)
    received = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            return True, received
        if not data:
            return True, received
        received += data
    return False, received


# ---------------------------------------------------------------- item 8: slow clients


def test_half_sent_headers_are_closed_at_the_header_deadline(svc: ServiceProcess) -> None:
    socks = [connect(svc) for _ in range(8)]
    try:
        for s in socks:
            s.sendall(b"POST /symbolicate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        started = time.monotonic()
        for s in socks:
            closed, _ = closed_within(s, HEADER_S + 3.0 - (time.monotonic() - started))
            assert closed, "a half-sent header kept its connection past limits.header_timeout_s"
        assert time.monotonic() - started >= HEADER_S * 0.8
    finally:
        for s in socks:
            s.close()
    healthy(svc)


def test_trickled_headers_do_not_extend_the_deadline(svc: ServiceProcess) -> None:
    s = connect(svc)
    try:
        started = time.monotonic()
        s.sendall(b"GET /healthcheck HTTP/1.1\r\n")
        closed = False
        while time.monotonic() - started < HEADER_S + 3.0:
            try:
                s.sendall(b"X-A: b\r\n")
            except OSError:
                closed = True
                break
            closed, _ = closed_within(s, 0.2)
            if closed:
                break
        assert closed and time.monotonic() - started < HEADER_S + 3.0
    finally:
        s.close()


def test_connection_that_never_speaks_is_closed(svc: ServiceProcess) -> None:
    s = connect(svc)
    try:
        closed, _ = closed_within(s, HEADER_S + 3.0)
        assert closed
    finally:
        s.close()


def test_kept_alive_connection_serves_the_next_request_promptly(svc: ServiceProcess) -> None:
    """The deadline is per request: a client that reuses its connection is not cut off."""
    with requests.Session() as session:
        for _ in range(3):
            assert session.get(f"{svc.url}/healthcheck", timeout=10).text == "ok"
            time.sleep(HEADER_S / 2)


def test_slow_body_gets_408_and_the_connection_closes(svc: ServiceProcess) -> None:
    s = connect(svc)
    try:
        s.sendall(b"POST /symbolicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 50000000\r\n\r\n{\"stacktraces\": [")
        started = time.monotonic()
        received = b""
        closed = False
        while time.monotonic() - started < BODY_S + 4.0 and not closed:
            try:
                s.sendall(b" " * 10)
            except OSError:
                break
            closed, more = closed_within(s, 0.25)
            received += more
        assert received.startswith(b"HTTP/1.1 408"), received[:200]
        assert b"limits.body_timeout_s" in received
        assert time.monotonic() - started >= BODY_S * 0.8
    finally:
        s.close()
    healthy(svc)


def _served(s: socket.socket, request: bytes) -> bool:
    try:
        s.sendall(request)
        s.settimeout(10)
        return s.recv(65536).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_connections_over_the_cap_are_closed_on_arrival(svc: ServiceProcess) -> None:
    """The held connections each finish a keep-alive request first, so no header deadline can
    free a slot while the test runs; the extra one sends a whole request at once, so only the
    cap (never a deadline) can explain it closing without an answer. Connections of the tests
    before may still hold slots for a moment after they closed: fill the cap again until all
    of ours are served."""
    ping = b"GET /healthcheck HTTP/1.1\r\nHost: t\r\n\r\n"
    deadline = time.monotonic() + 20
    while True:
        held = [connect(svc) for _ in range(MAX_CONNECTIONS)]
        if all([_served(s, ping) for s in held]):
            break
        for s in held:
            s.close()
        assert time.monotonic() < deadline, "the cap's slots never came free"
        time.sleep(0.5)
    try:
        extra = connect(svc)
        try:
            extra.sendall(ping)
            closed, received = closed_within(extra, 10.0)
            assert closed and b"HTTP/1.1" not in received, "a connection past limits.max_connections was served"
        finally:
            extra.close()
        assert _served(held[0], ping), "a held connection was dropped"
    finally:
        for s in held:
            s.close()
    time.sleep(0.3)
    healthy(svc)


# ---------------------------------------------------------------- item 7: many empty entries


def post(svc: ServiceProcess, path: str, body: Any, **params: str) -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(f"{svc.url}{path}", data=data, params=params, timeout=60,
                         headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path", ["/symbolicate", "/symbolicate-js"])
def test_stack_traces_and_modules_count_in_the_caps(svc: ServiceProcess, path: str) -> None:
    r = post(svc, path, {"stacktraces": [{}] * (MAX_TRACES + 1), "modules": []})
    assert r.status_code == 413 and "limits.max_stacktraces_per_request" in r.json()["detail"], r.text
    modules: Any = [{"type": "elf", "debug_id": "00000000-0000-0000-0000-000000000000",
                     "image_addr": "0x1000"}] * (MAX_MODULES + 1)
    if path == "/symbolicate-js":
        modules = [{"type": "sourcemap", "code_file": f"http://x/{i}.js",
                    "debug_id": "00000000-0000-0000-0000-000000000000"} for i in range(MAX_MODULES + 1)]
    r = post(svc, path, {"stacktraces": [], "modules": modules})
    assert r.status_code == 413 and "limits.max_modules_per_request" in r.json()["detail"], r.text
    r = post(svc, path, {"stacktraces": [{}] * MAX_TRACES, "modules": []})
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text


async def test_a_million_empty_stack_traces_never_stall_other_requests(svc: ServiceProcess) -> None:
    """6 MB of `{}`: refused with 413 while /healthcheck keeps answering promptly."""
    body = b'{"stacktraces": [' + b",".join([b"{}"] * 1_000_000) + b'], "modules": []}'
    worst = 0.0
    async with aiohttp.ClientSession() as session:
        async def ping() -> None:
            nonlocal worst
            while True:
                started = time.monotonic()
                async with session.get(f"{svc.url}/healthcheck") as r:
                    assert await r.text() == "ok"
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.02)

        pinger = asyncio.ensure_future(ping())
        try:
            await asyncio.sleep(0.1)
            for _ in range(3):
                async with session.post(f"{svc.url}/symbolicate", data=io.BytesIO(body),
                                        headers={"Content-Type": "application/json"}) as r:
                    assert r.status == 413, await r.text()
                    assert "limits.max_stacktraces_per_request" in (await r.json())["detail"]
        finally:
            pinger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pinger
    assert worst < 1.0, f"/healthcheck waited {worst:.2f} s while the big body was checked"


# ---------------------------------------------------------------- item 11: names


@pytest.mark.parametrize("scope", ["acme/web\n", "acme\n", "acme/web\r\n", "acme/web\x00"])
def test_scope_with_a_trailing_newline_is_refused(svc: ServiceProcess, scope: str) -> None:
    r = post(svc, "/symbolicate", {"stacktraces": [], "modules": []}, scope=scope)
    assert r.status_code == 422, r.text
    assert "invalid scope" in r.json()["detail"]


def test_long_release_is_a_422_not_a_storage_error(svc: ServiceProcess) -> None:
    frames = [{"abs_path": "app:///main.js", "lineno": 1, "colno": 1}]
    r = post(svc, "/symbolicate-js", {"release": "r" * 400, "stacktraces": [{"frames": frames}]}, scope="acme/web")
    assert r.status_code == 422, r.text
    assert "at most 200" in r.json()["detail"]
    r = post(svc, "/symbolicate-js", {"release": "1.0", "dist": "d" * 65, "stacktraces": [{"frames": frames}]},
             scope="acme/web")
    assert r.status_code == 422 and "at most 64" in r.json()["detail"], r.text
    r = post(svc, "/symbolicate-js", {"release": "é" * 200, "stacktraces": [{"frames": frames}]}, scope="acme/web")
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text
    assemble = requests.post(f"{svc.url}/api/0/organizations/acme/artifactbundle/assemble/", timeout=30,
                             headers={"Authorization": f"Bearer {TOKEN}"},
                             json={"checksum": "0" * 40, "chunks": [], "projects": ["web"], "version": "v" * 400})
    assert assemble.status_code == 422, assemble.text
    assert "at most 200" in assemble.json()["detail"]


def test_a_stored_long_release_name_fits_a_file_name(tmp_path: Path) -> None:
    """A bundle's manifest may carry any release: its key segment stays within a file name's 255 bytes."""
    from symbolicator import keys
    from symbolicator.storage.local import LocalStorage
    from symbolicator.types import Scope

    storage = LocalStorage(tmp_path)
    key = keys.js_release_index(Scope.parse("acme/web"), "é" * 400, "d" * 300, "https://x/app.js")
    storage.put_bytes(key, b"{}")
    assert storage.get_bytes(key) == b"{}"
    assert keys.js_release_index(Scope.parse("acme/web"), "1.0", None, "u").split("/")[5] == "v=1.0"
