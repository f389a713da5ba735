"""Sentry's ingest loop, replayed in Python against the real service (reference §5).

`SentryLikeClient` does what `sentry/lang/native/symbolicator.py` does: POST with
`?timeout=<poll timeout>&scope=<numeric project id>` and the `x-sentry-*` headers,
a `type: "sentry"` source first in `sources`, `options.dif_candidates: true`; on
`pending` it long-polls `GET /requests/<id>?timeout=…&scope=…` with no sleep; a 404
on a poll means the service lost the request (a restart), so it resubmits the
whole task; 502/503 rotate the worker id and resubmit with backoff; network errors
are retried three times. Every exchange is recorded, so the tests can prove that
`pending`, polling and the 404 → resubmit path really happened.

A fresh, large module makes the service slow enough to answer `pending` to a
`?timeout=0.01`: each test uploads its own copy of `rust_static_v0_zlib` with a
patched build-id (new debug id, new content hash, so nothing is cached yet;
its conversion takes a few hundred milliseconds).
"""

from __future__ import annotations

import secrets
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from elftools.elf.elffile import ELFFile

from tests.support.service import ServiceProcess
from tests.support.native_service import (
    ELF,
    IMAGE_ADDR,
    elf_info,
    elf_module,
    start_service,
    upload,
)

PROJECT_ID = "42"  # scope_aliases: "42" → acme/web
SENTRY_SOURCE = {"type": "sentry", "id": "sentry:project", "token": "system-token",
                 "url": "http://web/api/0/projects/acme/web/files/dsyms/"}


class SentryLikeClient:
    """One Sentry worker task: submit, poll until done, resubmit when the service forgot the task."""

    def __init__(self, base_url: Callable[[], str], project_id: str, poll_timeout: float = 5.0,
                 on_pending: Callable[[], None] | None = None) -> None:
        self.base_url = base_url
        self.project_id = project_id
        self.poll_timeout = poll_timeout
        self.on_pending = on_pending
        self.worker_id = secrets.token_hex(16)
        self.events: list[tuple[str, int, str | None]] = []

    def _headers(self) -> dict[str, str]:
        return {"x-sentry-project-id": self.project_id, "x-sentry-event-id": uuid.uuid4().hex,
                "x-sentry-worker-id": self.worker_id}

    def _request(self, kind: str, method: str, path: str, **kwargs: Any) -> requests.Response | None:
        for delay in (0.5, 1.0, 2.0, None):
            try:
                r = requests.request(method, self.base_url() + path, headers=self._headers(),
                                     timeout=self.poll_timeout + 1, **kwargs)
            except requests.ConnectionError:
                if delay is None:
                    raise
                self.events.append((kind, 0, "network_error"))
                time.sleep(delay)
                continue
            status = r.json().get("status") if r.headers.get("Content-Type", "").startswith("application/json") else None
            self.events.append((kind, r.status_code, status))
            return r
        return None  # pragma: no cover

    def process(self, path: str, body: dict[str, Any], deadline_s: float = 60.0) -> dict[str, Any]:
        params = {"timeout": self.poll_timeout, "scope": self.project_id}
        started = time.monotonic()
        backoff = 0.1
        r = self._request("submit", "POST", path, params=params, json=body)
        while time.monotonic() - started < deadline_s:
            assert r is not None
            if r.status_code in (502, 503):
                self.worker_id = secrets.token_hex(16)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                r = self._request("submit", "POST", path, params=params, json=body)
                continue
            if r.status_code == 404:
                r = self._request("submit", "POST", path, params=params, json=body)
                continue
            if r.status_code != 200:
                return {"status": "failed", "message": "internal server error"}
            answer: dict[str, Any] = r.json()
            if answer["status"] != "pending":
                return answer
            assert answer["retry_after"] == 30
            if self.on_pending is not None:
                hook, self.on_pending = self.on_pending, None
                hook()
            r = self._request("poll", "GET", f"/requests/{answer['request_id']}", params=params)
        raise TimeoutError("symbolication did not finish")


def fresh_large_module(tmp_path: Path, tag: bytes) -> Path:
    """A copy of `rust_static_v0_zlib` whose build-id starts with `tag`: a module never seen before."""
    src = ELF / "rust_static_v0_zlib"
    data = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        note = ELFFile(f).get_section_by_name(".note.gnu.build-id")
        desc = note["sh_offset"] + 16
    data[desc:desc + len(tag)] = tag
    out = tmp_path / f"big_{tag.hex()}"
    out.write_bytes(data)
    return out


def native_body(path: Path) -> dict[str, Any]:
    lo, hi = elf_info(path)["text"]
    vmaddr = elf_info(path)["vmaddr"]
    frames = [{"instruction_addr": hex(IMAGE_ADDR + a - vmaddr)} for a in range(lo + 0x40, hi, (hi - lo) // 8)][:8]
    return {"platform": "native", "sources": [SENTRY_SOURCE],
            "options": {"dif_candidates": True, "apply_source_context": True},
            "stacktraces": [{"registers": {}, "frames": frames}], "modules": [elf_module(path)]}


def assert_symbolicated(answer: dict[str, Any], path: Path) -> None:
    assert answer["status"] == "completed", answer
    frames = answer["stacktraces"][0]["frames"]
    assert {f["original_index"] for f in frames} == set(range(8))
    assert all(f["status"] == "symbolicated" and f["function"] for f in frames), frames
    module = answer["modules"][0]
    assert module["debug_status"] == "found"
    assert module["candidates"][0]["source"] == "sentry:project"
    assert module["code_file"] == f"/usr/bin/{path.name}"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = start_service(tmp_path_factory.mktemp("sentry-client"))
    try:
        yield service
    finally:
        service.stop()


def test_completes_within_the_poll_timeout(svc: ServiceProcess) -> None:
    upload(svc, ELF / "c_gcc_O2_dwarf5")
    client = SentryLikeClient(lambda: svc.url, PROJECT_ID)
    answer = client.process("/symbolicate", native_body(ELF / "c_gcc_O2_dwarf5"))
    assert_symbolicated(answer, ELF / "c_gcc_O2_dwarf5")
    assert client.events == [("submit", 200, "completed")]


def test_pending_then_long_polling(svc: ServiceProcess, tmp_path: Path) -> None:
    big = fresh_large_module(tmp_path, b"\x01\x02\x03\x04")
    upload(svc, big)
    client = SentryLikeClient(lambda: svc.url, PROJECT_ID, poll_timeout=0.01)
    answer = client.process("/symbolicate", native_body(big))
    assert_symbolicated(answer, big)
    assert client.events[0] == ("submit", 200, "pending")
    assert client.events[-1] == ("poll", 200, "completed")
    assert all(e[:2] in (("poll", 200), ("submit", 200)) for e in client.events)


def test_poll_from_another_scope_is_unknown(svc: ServiceProcess, tmp_path: Path) -> None:
    big = fresh_large_module(tmp_path, b"\x05\x06\x07\x08")
    upload(svc, big)
    r = requests.post(f"{svc.url}/symbolicate", params={"scope": PROJECT_ID, "timeout": 0.01}, json=native_body(big),
                      timeout=10)
    pending = r.json()
    assert pending["status"] == "pending"
    other = requests.get(f"{svc.url}/requests/{pending['request_id']}", params={"scope": "other"}, timeout=10)
    assert other.status_code == 404
    same = requests.get(f"{svc.url}/requests/{pending['request_id']}", params={"scope": PROJECT_ID, "timeout": 30},
                        timeout=40)
    assert_symbolicated(same.json(), big)


def test_restart_between_submit_and_poll_resubmits(svc: ServiceProcess, tmp_path: Path) -> None:
    big = fresh_large_module(tmp_path, b"\x09\x0a\x0b\x0c")
    upload(svc, big)

    def restart() -> None:
        svc.stop()
        svc.start()

    client = SentryLikeClient(lambda: svc.url, PROJECT_ID, poll_timeout=0.01, on_pending=restart)
    answer = client.process("/symbolicate", native_body(big))
    assert_symbolicated(answer, big)
    kinds = [(e[0], e[1]) for e in client.events]
    assert client.events[0] == ("submit", 200, "pending")
    lost = kinds.index(("poll", 404))
    assert kinds[lost + 1] == ("submit", 200)
    assert client.events[-1][2] == "completed"


def test_apple_crash_report_the_sentry_way(svc: ServiceProcess) -> None:
    """Sentry posts crash reports as multipart with JSON-encoded fields, through the same loop."""
    apple = Path(__file__).resolve().parent / "fixtures/apple"
    upload(svc, ELF.parent / "macho/app_arm64.dSYM/Contents/Resources/DWARF/app_arm64")
    import json

    fields = {"sources": json.dumps([SENTRY_SOURCE]), "platform": json.dumps("cocoa"),
              "options": json.dumps({"dif_candidates": True})}
    params = {"timeout": 5, "scope": PROJECT_ID}
    files = {"apple_crash_report": ("crash.ips", (apple / "app-arm64.ips").read_bytes()),
             **{k: (None, v) for k, v in fields.items()}}
    r = requests.post(f"{svc.url}/applecrashreport", params=params, files=files, timeout=10)
    answer = r.json()
    while answer["status"] == "pending":
        answer = requests.get(f"{svc.url}/requests/{answer['request_id']}", params=params, timeout=10).json()
    assert answer["status"] == "completed"
    assert answer["stacktraces"][0]["frames"][0]["function"] == "compute"
