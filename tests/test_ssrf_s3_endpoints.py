"""SSRF through a request's S3 endpoint (issue 15, item 3), against the real service and a real SeaweedFS.

The deny rules are set so that one loopback port counts as forbidden: `fetch.allowed_hosts`
admits exactly `127.0.0.1:<SeaweedFS S3 port>`, so every other loopback port is refused as
`loopback`. A "secret" listener on another loopback port counts the connections it gets:
an attack works if that count is above zero. Expectations come from the listener and from
SeaweedFS, never from the service's own parse.
"""

from __future__ import annotations

import socket
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.seaweed import SeaweedServer
from tests.support.service import ServiceProcess
from tests.support.native_service import elf_info, elf_module, native_settings

pytestmark = pytest.mark.s3

ELF = Path(__file__).parent / "fixtures" / "native" / "out" / "elf" / "c_gcc_O2_dwarf5"


class CountingListener:
    """A TCP listener on 127.0.0.1 (or another loopback address) that counts accepted connections."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.sock = socket.create_server((host, port))
        self.host, self.port = self.sock.getsockname()[:2]
        self.accepted = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def secret() -> Iterator[CountingListener]:
    listener = CountingListener()
    yield listener
    listener.close()


@pytest.fixture(scope="module")
def bucket(seaweed: SeaweedServer) -> str:
    """A bucket holding the ELF fixture in the unified layout (`<2 hex>/<rest>/executable`)."""
    name = seaweed.make_bucket(f"ssrf-{uuid.uuid4().hex[:12]}")
    build_id = elf_info(ELF)["build_id"]
    seaweed.client().upload_file(str(ELF), name, f"{build_id[:2]}/{build_id[2:]}/executable")
    return name


@pytest.fixture(scope="module")
def svc(seaweed: SeaweedServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("ssrf-s3")
    settings = native_settings(root, allow_request_sources=True, scraping={"enabled": False},
                               fetch={"allowed_hosts": [f"127.0.0.1:{seaweed.ports['s3']}"],
                                      "connect_timeout_s": 2.0})
    with ServiceProcess(root, settings) as service:
        yield service


def s3_request(seaweed: SeaweedServer, bucket: str, endpoint: str) -> dict[str, Any]:
    source = {"id": "theirs", "type": "s3", "bucket": bucket, "region": [seaweed.region, endpoint],
              "access_key": seaweed.access_key, "secret_key": seaweed.secret_key, "layout": {"type": "unified"}}
    return {"stacktraces": [{"frames": [{"instruction_addr": hex(0x5555_5555_4000 + 0x1000)}]}],
            "modules": [elf_module(ELF)], "sources": [source], "options": {"dif_candidates": True}}


def symbolicate(svc: ServiceProcess, body: dict[str, Any]) -> dict[str, Any]:
    r = requests.post(f"{svc.url}/symbolicate", json=body, params={"scope": "acme/web"}, timeout=60)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed", answer
    return answer


def test_allowed_endpoint_is_used(svc: ServiceProcess, seaweed: SeaweedServer, bucket: str) -> None:
    """The control: the guarded client still reaches the one loopback port the rules admit."""
    answer = symbolicate(svc, s3_request(seaweed, bucket, seaweed.endpoint_url))
    assert answer["modules"][0]["debug_status"] == "found", answer["modules"][0]


@pytest.mark.parametrize("spelling", [
    "http://127.0.0.1:{secret}\\@127.0.0.1:{allowed}",
    "http://127.0.0.1:{secret}\\\\@127.0.0.1:{allowed}/",
    "http://x@127.0.0.1:{secret}",
    "http://127.0.0.1:{secret} @127.0.0.1:{allowed}",
    "http://127.0.0.1:{secret}\t@127.0.0.1:{allowed}",
    "http://127.0.0.1:{secret}\x00@127.0.0.1:{allowed}",
])
def test_spellings_that_botocore_reads_differently_never_connect(
        svc: ServiceProcess, seaweed: SeaweedServer, bucket: str, secret: CountingListener, spelling: str) -> None:
    """`urlsplit` reads the part after `@` as the host; botocore's urllib3 stops at `\\` and connects before it."""
    endpoint = spelling.format(secret=secret.port, allowed=seaweed.ports["s3"])
    answer = symbolicate(svc, s3_request(seaweed, bucket, endpoint))
    assert secret.accepted == 0, f"{endpoint!r} reached the forbidden port"
    module = answer["modules"][0]
    assert module["debug_status"] != "found"
    assert any("theirs" == c.get("source") and "refused" in str(c) for c in module.get("candidates", [])), module


@pytest.mark.parametrize("endpoint", ["http://127.0.0.1:{secret}", "http://localhost:{secret}",
                                      "http://0x7f.1:{secret}", "http://[::ffff:127.0.0.1]:{secret}"])
def test_forbidden_port_is_refused_on_the_socket(
        svc: ServiceProcess, seaweed: SeaweedServer, bucket: str, secret: CountingListener, endpoint: str) -> None:
    endpoint = endpoint.format(secret=secret.port)
    answer = symbolicate(svc, s3_request(seaweed, bucket, endpoint))
    assert secret.accepted == 0, f"{endpoint!r} reached the forbidden port"
    module = answer["modules"][0]
    assert module["debug_status"] != "found"
    details = [c["download"].get("details", "") for c in module["candidates"] if c.get("source") == "theirs"]
    assert details and all("invalid_host" in d for d in details), module["candidates"]


def test_one_lookup_per_connection_so_rebinding_gains_nothing(
        seaweed: SeaweedServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A name that answers an allowed address to the check and a forbidden one afterwards (DNS rebinding).

    The forbidden listener sits on 127.0.0.2 at SeaweedFS's own port, so only the address differs.
    In process, because the test must control what the resolver answers.
    """
    import asyncio

    from symbolicator.config import FetchSettings
    from symbolicator.fetch import Fetcher
    from symbolicator.sources import download as dl
    from symbolicator.sources.config import parse_source

    port = seaweed.ports["s3"]
    rebound = CountingListener("127.0.0.2", port)
    real_getaddrinfo = socket.getaddrinfo
    answers = iter(["127.0.0.1"])

    def rebinding(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "rebind.example":
            return real_getaddrinfo(next(answers, "127.0.0.2"), *args, **kwargs)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    build_id = elf_info(ELF)["build_id"]
    source = parse_source({"id": "theirs", "type": "s3", "bucket": bucket, "layout": {"type": "unified"},
                           "region": [seaweed.region, f"http://rebind.example:{port}"],
                           "access_key": seaweed.access_key, "secret_key": seaweed.secret_key}, "request")
    fetcher = Fetcher(FetchSettings(connect_timeout_s=1.0), allowed_hosts=[f"127.0.0.1:{port}"])
    outcomes: list[str] = []
    try:
        for i in range(2):
            try:  # no `s3_clients`: a fresh client, so a fresh connection and a fresh lookup
                asyncio.run(dl.download(source, f"{build_id[:2]}/{build_id[2:]}/executable", tmp_path / f"f{i}",
                                        fetcher=fetcher, max_bytes=1 << 26))
                outcomes.append("ok")
            except dl.DownloadMiss as e:
                outcomes.append(str(e))
    finally:
        rebound.close()
    assert rebound.accepted == 0
    assert outcomes[0] == "ok"
    assert outcomes[1].startswith("invalid_host") and "127.0.0.2" in outcomes[1], outcomes
