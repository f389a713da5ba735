"""`POST /symbolicate-any` in Symbolicator's form: a stored minidump or Apple crash report named
by `storage_url` (Symbolicator's `SymbolicateAnyRequestBody`: `symbolicate: {type, storage_url,
rewrite_first_module}`), fetched from a real loopback HTTP server through the service's fetch
policy.

Truth: the same service's answer for the same file posted to `/minidump` or
`/applecrashreport` (which `tests/test_minidump.py` and `tests/test_applecrashreport.py` judge
against minidump-stackwalk, gdb and llvm-symbolizer), and minidump-stackwalk's walk recorded in
`truth/*.json`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from aiohttp import web

from tests.support.minidump import MD, X86_BINARIES, answer_addresses, post_dump, score, truth, walked_addresses
from tests.support.native_service import NATIVE, SCOPE, start_service, upload
from tests.support.service import ServiceProcess
from tests.support.websites import Website

APPLE = Path(__file__).resolve().parent / "fixtures/apple"
DSYMS = [NATIVE / "macho/app_arm64.dSYM/Contents/Resources/DWARF/app_arm64",
         NATIVE / "macho/libdylib_arm64.dylib.dSYM/Contents/Resources/DWARF/libdylib_arm64.dylib"]
TOKEN = "attachment-token-4711"


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    service = start_service(tmp_path_factory.mktemp("stored"), fetch={"allow_private_addresses": True})
    try:
        for path in [*X86_BINARIES, *DSYMS]:
            upload(service, path)
        yield service
    finally:
        service.stop()


def any_request(svc: ServiceProcess, body: Any, **params: Any) -> requests.Response:
    return requests.post(f"{svc.url}/symbolicate-any", params={"scope": SCOPE, **params}, json=body, timeout=120)


def stored(kind: str, url: str, **extra: Any) -> dict[str, Any]:
    return {"symbolicate": {"type": kind, "storage_url": url, **extra}, "options": {"dif_candidates": True}}


def serve(site: Website, path: str, body: bytes, seen: list[str | None]) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Authorization"))
        return web.Response(body=body)

    site.add(path, handler)


async def test_stored_minidump_answers_as_the_minidump_endpoint(svc: ServiceProcess) -> None:
    data = (MD / "dumps/segv-worker.dmp").read_bytes()
    seen: list[str | None] = []
    # Warm first: a module's first conversion failure names a temp path the remembered one does not.
    await asyncio.to_thread(post_dump, svc, data, options={"dif_candidates": True})
    async with Website() as site:
        serve(site, "/attachments/7/minidump", data, seen)
        body = stored("minidump", site.url("/attachments/7/minidump"), storage_token=TOKEN, rewrite_first_module=[])
        r = await asyncio.to_thread(any_request, svc, body)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed", answer
    assert seen == [f"Bearer {TOKEN}"]
    direct = await asyncio.to_thread(post_dump, svc, data, options={"dif_candidates": True})
    expected = direct.json()
    for key in ("crashed", "crash_reason", "system_info", "timestamp", "stacktraces", "modules"):
        assert answer[key] == expected[key], key
    t = truth("segv-worker")
    good, total = score([answer_addresses(x) for x in answer["stacktraces"]],
                        [walked_addresses(x["frames"]) for x in t["threads"]])
    assert good == total
    crashed = answer["stacktraces"][t["crash_info"]["crashing_thread"]]
    assert crashed["is_requesting"] and [f.get("function") for f in crashed["frames"][:2]] == ["lib_scale", "lib_compute"]


async def test_stored_apple_crash_report_answers_as_its_endpoint(svc: ServiceProcess) -> None:
    report = (APPLE / "app-arm64.crash").read_bytes()
    seen: list[str | None] = []
    async with Website() as site:
        serve(site, "/attachments/8/report", report, seen)
        r = await asyncio.to_thread(any_request, svc, stored("applecrashreport", site.url("/attachments/8/report")))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "completed", answer
    assert seen == [None]
    direct = requests.post(f"{svc.url}/applecrashreport", params={"scope": SCOPE}, timeout=60, files={
        "apple_crash_report": ("app.crash", report), "options": (None, json.dumps({"dif_candidates": True}))}).json()
    assert answer == direct
    expected = json.loads((APPLE / "expected.json").read_text())
    functions = {f.get("function") for t in answer["stacktraces"] for f in t["frames"]}
    wanted = {f["function"] for t in expected["threads"] for f in t["frames"]
              if f.get("function") and f["image"] in ("App", "libdylib.dylib")}  # the uploaded dSYMs
    assert wanted and wanted <= functions


async def test_stored_attachment_failures(svc: ServiceProcess, tmp_path: Path) -> None:
    """Bad shapes are 422 before any fetch; a missing, oversized or broken attachment ends the
    job `failed` with the reason (Symbolicator's answer when its download fails); the service
    keeps serving. Without `fetch.allow_private_addresses`, a loopback `storage_url` is refused
    as scraping refuses it: the server is never contacted."""
    async with Website() as site:
        site.add_body("/garbage", b"MDMP but not really a minidump")
        for bad in ({"symbolicate": {"type": "pe", "storage_url": site.url("/x")}},
                    {"symbolicate": {"type": "minidump", "storage_url": "file:///etc/passwd"}},
                    {"symbolicate": {"type": "minidump"}},
                    stored("minidump", site.url("/x"), rewrite_first_module=[{"from": "(", "to": ""}]),
                    {**stored("minidump", site.url("/x")), "sources": "not a list"}):
            r = await asyncio.to_thread(any_request, svc, bad)
            assert r.status_code == 422, (bad, r.text)
        assert site.requests == []
        gone = (await asyncio.to_thread(any_request, svc, stored("minidump", site.url("/gone")))).json()
        assert gone["status"] == "failed" and "not_found" in gone["message"]
        broken = (await asyncio.to_thread(any_request, svc, stored("minidump", site.url("/garbage")))).json()
        assert broken["status"] == "failed" and "minidump" in broken["message"]
        report = (await asyncio.to_thread(any_request, svc, stored("applecrashreport", site.url("/garbage")))).json()
        assert report["status"] == "failed"

        strict = await asyncio.to_thread(start_service, tmp_path / "strict")
        try:
            refused = (await asyncio.to_thread(any_request, strict, stored("minidump", site.url("/garbage")))).json()
        finally:
            await asyncio.to_thread(strict.stop)
        assert refused["status"] == "failed" and "invalid_host" in refused["message"]
        assert site.requests.count("/garbage") == 2  # the two fetches above, none from the strict service
    ok = await asyncio.to_thread(post_dump, svc, (MD / "dumps/abort-main.dmp").read_bytes())
    assert ok.status_code == 200 and ok.json()["status"] == "completed"
