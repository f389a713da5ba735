"""`Services`, the composition root (issue 12 item 1).

Opened in-process, it symbolicates a real ELF module (expectations from llvm-symbolizer) through
the same upload and lookup code as the HTTP service, and closing it leaves no task, thread or
worker process behind. The web app opens and closes one in its cleanup context, so its shutdown
leaves no pending task either (the worker warm-up used to be cancelled but never awaited), and
each symbolication request is authorised once (it used to be twice: in the handler and in
`run_job`).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient, TestServer

from symbolicator.service.native import NativeRequest
from symbolicator.types import Scope
from symbolicator.web.app import create_app
from symbolicator.web.auth import Authenticator
from symbolicator.web.state import AUTH
from tests.support.native_service import (
    ELF,
    IMAGE_ADDR,
    SCOPE,
    by_original_index,
    elf_info,
    elf_module,
    llvm_symbolize,
    needs_llvm,
    ours,
    sample_addresses,
)
from tests.support.services import open_services, services_settings, threads_left

NAME = "c_gcc_O2_dwarf5"
APPLE = Path(__file__).parent / "fixtures/apple/app-arm64.crash"
DUMP = Path(__file__).parent / "fixtures/minidump/dumps/arm64-segv-worker.dmp"
FORMS = {"/applecrashreport": ("apple_crash_report", APPLE), "/minidump": ("upload_file_minidump", DUMP)}


def _children_left(wait_s: float = 10.0) -> list[Any]:
    deadline = time.monotonic() + wait_s
    while (left := multiprocessing.active_children()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


@needs_llvm
def test_services_in_process_symbolicate_a_real_elf_and_close_without_leaks(tmp_path: Path) -> None:
    path = ELF / NAME
    addrs = sample_addresses(path, 40)
    expected = llvm_symbolize(path, addrs)
    vmaddr = elf_info(path)["vmaddr"]
    frames = [{"instruction_addr": hex(IMAGE_ADDR + a - vmaddr), "adjust_instruction_addr": False} for a in addrs]
    body = {"stacktraces": [{"frames": frames}], "modules": [elf_module(path)]}
    scope = Scope.parse(SCOPE)
    threads_before = set(threading.enumerate())

    async def run() -> tuple[list[dict[str, Any]], int, list[asyncio.Task[Any]]]:
        async with open_services(tmp_path / "svc") as services:
            upload = tmp_path / "upload.debug"
            shutil.copyfile(path, upload)
            await services.uploads.upload_file(scope, upload, NAME)
            answers = [await services.native.symbolicate(NativeRequest.from_json(body), scope) for _ in range(2)]
            opened = len(services.native.deps.symcaches)  # the second answer came from the service's memo
        return answers, opened, [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    answers, opened, tasks_left = asyncio.run(run())
    assert tasks_left == []
    assert opened == 1
    for answer in answers:
        assert answer["modules"][0]["debug_status"] == "found"
        got = by_original_index(answer["stacktraces"][0]["frames"])
        assert [ours(got[i]) for i in range(len(addrs))] == expected
    assert threads_left(threads_before) == []
    assert _children_left() == []


def test_two_services_share_no_memo(tmp_path: Path) -> None:
    async def run() -> bool:
        async with open_services(tmp_path / "a") as a, open_services(tmp_path / "b") as b:
            return (a.native.deps.symcaches is b.native.deps.symcaches or a.native.cfi_caches is b.native.cfi_caches
                    or a.native.deps.s3_clients is b.native.deps.s3_clients or a.js.deps.memos is b.js.deps.memos)

    assert asyncio.run(run()) is False


def test_app_shutdown_leaves_no_pending_task(tmp_path: Path) -> None:
    async def run() -> list[asyncio.Task[Any]]:
        async with TestClient(TestServer(create_app(services_settings(tmp_path)))) as client:
            assert (await client.get("/healthcheck")).status == 200
        await asyncio.sleep(0)
        return [t for t in asyncio.all_tasks() if t is not asyncio.current_task() and not t.done()]

    assert asyncio.run(run()) == []


@pytest.mark.parametrize("route", ["/symbolicate", "/symbolicate-js", "/symbolicate-any", "/applecrashreport",
                                   "/minidump"])
def test_each_request_is_authorised_once(tmp_path: Path, route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = Authenticator.require_symbolicate

    def counting(self: Authenticator, request: Any, scope: Scope) -> None:
        calls.append(request.path)
        original(self, request, scope)

    monkeypatch.setattr(Authenticator, "require_symbolicate", counting)
    empty = {"stacktraces": [{"frames": []}], "modules": []}

    async def run() -> int:
        app = create_app(services_settings(tmp_path))
        async with TestClient(TestServer(app)) as client:
            assert isinstance(app[AUTH], Authenticator)
            if route in FORMS:
                field, path = FORMS[route]
                form = FormData()
                form.add_field(field, path.read_bytes(), filename=path.name)
                r = await client.post(route, params={"scope": SCOPE}, data=form)
            else:
                r = await client.post(route, params={"scope": SCOPE}, json=empty)
            assert r.status == 200, await r.text()
            assert (await r.json())["status"] == "completed"
            return r.status

    asyncio.run(run())
    assert calls == [route]
