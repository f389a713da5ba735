"""`/symbolicate-js` scraping real loopback websites that behave and misbehave.

The service runs as a real process with `fetch.allow_private_addresses = true`
(these tests only). Every broken website must end as a per-frame error plus a
`scraping_attempts` entry, never a 500; a slow website must not hold up a request
whose map was uploaded; 50 concurrent events for one uncached map must cost the
website one request. Expected positions come from `node --enable-source-maps`
(`tests/fixtures/js/expected/esbuild.node.json`), context lines from the
original sources.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import aiohttp
import pytest

from tests.support.service import ServiceProcess, local_settings
from tests.support.tools import SENTRY_CLI
from tests.support.websites import Website

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "tests" / "fixtures" / "js"
BIN = REPO / "node_modules" / ".bin"
APP = (JS / "out/esbuild/app.js").read_bytes()
MAP = (JS / "out/esbuild/app.js.map").read_bytes()
INLINE = (JS / "out/esbuild-inline/app.js").read_bytes()
NO_COMMENT = APP.replace(b"//# sourceMappingURL=app.js.map", b"")
NODE = json.loads((JS / "expected/esbuild.node.json").read_text())["frames"][0]
ORIGINAL = (JS / NODE["original"]["file"]).read_text().split("\n")


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    work = tmp_path_factory.mktemp("js-scraping")
    svc = ServiceProcess(work, local_settings(work, fetch={
        "allow_private_addresses": True, "connect_timeout_s": 1.0, "read_timeout_s": 1.5, "total_timeout_s": 4.0}))
    with svc:
        yield svc


def frame(url: str) -> dict[str, Any]:
    return {"abs_path": url, "lineno": NODE["line"], "colno": NODE["column"], "function": "e"}


async def symbolicate(session: aiohttp.ClientSession, svc: ServiceProcess, frames: list[dict[str, Any]],
                      scope: str = "global", **extra: Any) -> dict[str, Any]:
    async with session.post(f"{svc.url}/symbolicate-js", params={"scope": scope},
                            json={"stacktraces": [{"frames": frames}], **extra}) as r:
        assert r.status == 200, await r.text()
        body: dict[str, Any] = await r.json()
    assert body["status"] == "completed", (body, svc.log())
    return body


def assert_mapped(out: dict[str, Any], resolved_with: str) -> None:
    original = NODE["original"]
    assert out["abs_path"].endswith("/" + original["file"]), out
    assert (out["lineno"], out["colno"]) == (original["line"], original["column"])
    assert out["context_line"] == ORIGINAL[original["line"] - 1]
    assert out["pre_context"] == ORIGINAL[original["line"] - 6 : original["line"] - 1]
    assert out["data"]["symbolicated"] is True and out["data"]["resolved_with"] == resolved_with


def errors_by_path(body: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for e in body["errors"]:
        out.setdefault(e["abs_path"], []).append(e)
    return out


async def test_maps_found_by_comment_data_url_and_header_and_every_broken_site(service: ServiceProcess) -> None:
    async with Website() as site:
        site.add_body("/ok/app.js", APP)
        site.add_body("/ok/app.js.map", MAP)
        site.add_body("/inline/app.js", INLINE)
        site.add_body("/header/app.js", NO_COMMENT, headers={"SourceMap": "/maps/header.map"})
        site.add_body("/maps/header.map", MAP)
        site.add_body("/xheader/app.js", NO_COMMENT, headers={"X-SourceMap": "x.map"})
        site.add_body("/xheader/x.map", MAP)
        broken = {"slow": "timeout", "gone": "not_found", "fail": "download_error", "loop": "download_error",
                  "away": "invalid_host", "huge": "too_large"}
        for name in [*broken, "html"]:
            site.add_body(f"/{name}/app.js", APP)
        site.add_drip("/slow/app.js.map", MAP, first_byte_delay_s=10)
        site.add_status("/gone/app.js.map", 404)
        site.add_status("/fail/app.js.map", 500)
        site.add_redirect("/loop/app.js.map", "/loop/app.js.map")
        site.add_redirect("/away/app.js.map", f"http://localhost:{site.port}/ok/app.js.map")
        site.add_huge("/huge/app.js.map", 70 * 1024 * 1024, chunked=True)
        site.add_body("/html/app.js.map", b"<!doctype html><html><body>Not here</body></html>",
                      content_type="text/html")
        site.add_body("/nomap/app.js", NO_COMMENT)
        names = ["ok", "inline", "header", "xheader", *broken, "html", "nomap", "missing"]
        frames = [frame(site.url(f"/{n}/app.js")) for n in names]
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            body = await symbolicate(session, service, frames,
                                     scraping={"enabled": True, "allowed_origins": ["127.0.0.1"]})
            elapsed = time.monotonic() - started
    assert elapsed < 8, elapsed
    out = dict(zip(names, body["stacktraces"][0]["frames"]))
    raw = dict(zip(names, body["raw_stacktraces"][0]["frames"]))
    for name in ("ok", "inline", "header", "xheader"):
        assert_mapped(out[name], "scraping")
    assert out["ok"]["data"]["sourcemap"] == site.url("/ok/app.js.map")
    assert out["inline"]["data"]["sourcemap_origin"] == "embedded"
    assert out["header"]["data"]["sourcemap"] == site.url("/maps/header.map")
    errors = errors_by_path(body)
    assert not {"ok", "inline", "header", "xheader"} & {n for n in names if site.url(f"/{n}/app.js") in errors}
    attempts = {a["url"]: a for a in body["scraping_attempts"]}
    assert attempts[site.url("/ok/app.js.map")]["status"] == "success"
    for name, reason in broken.items():
        url = site.url(f"/{name}/app.js")
        assert errors[url] == [{"abs_path": url, "type": "missing_sourcemap"}], name
        assert attempts[site.url(f"/{name}/app.js.map")]["status"] == "failure"
        assert attempts[site.url(f"/{name}/app.js.map")]["reason"] == reason, name
        assert out[name] == raw[name] and out[name]["data"] == {"symbolicated": False}
        assert out[name]["lineno"] == NODE["line"] and out[name]["function"] == "e"
        assert out[name]["context_line"].startswith("{snip} ")
    html = site.url("/html/app.js")
    assert errors[html] == [{"abs_path": html, "type": "malformed_sourcemap", "url": site.url("/html/app.js.map")}]
    nomap = site.url("/nomap/app.js")
    assert errors[nomap] == [{"abs_path": nomap, "type": "missing_sourcemap"}]
    missing = site.url("/missing/app.js")
    assert errors[missing] == [{"abs_path": missing, "type": "missing_source"}]
    assert attempts[missing]["reason"] == "not_found"
    assert "context_line" not in out["missing"]
    assert body["errors"] == sorted(body["errors"], key=lambda e: (e["abs_path"], e["type"]))


async def test_scraping_disabled(service: ServiceProcess) -> None:
    async with Website() as site:
        site.add_body("/app.js", APP)
        async with aiohttp.ClientSession() as session:
            body = await symbolicate(session, service, [frame(site.url("/app.js"))], scraping={"enabled": False})
            legacy = await symbolicate(session, service, [frame(site.url("/app.js"))], allow_scraping=False)
        assert site.requests == []
    url = site.url("/app.js")
    for answer in (body, legacy):
        assert answer["errors"] == [{"abs_path": url, "type": "scraping_disabled"}]
        assert answer["scraping_attempts"] == [{"url": url, "status": "failure", "reason": "disabled"}]
        assert answer["stacktraces"][0]["frames"][0]["data"] == {"symbolicated": False}


async def test_disallowed_origin_is_not_fetched(service: ServiceProcess) -> None:
    async with Website() as site:
        site.add_body("/app.js", APP)
        async with aiohttp.ClientSession() as session:
            body = await symbolicate(session, service, [frame(site.url("/app.js"))],
                                     scraping={"allowed_origins": ["*.example.com"]})
        assert site.requests == []
    attempt = body["scraping_attempts"][0]
    assert attempt["status"] == "failure" and attempt["reason"] == "invalid_host"
    assert body["errors"] == [{"abs_path": site.url("/app.js"), "type": "missing_source"}]


def upload_with_sentry_cli(svc: ServiceProcess, work: Path) -> str:
    """The injected esbuild fixture, uploaded by the real sentry-cli; its debug id."""
    dist = work / "dist"
    shutil.copytree(JS / "out/debugid", dist)
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "SENTRY_URL": svc.url, "SENTRY_AUTH_TOKEN": "sntryu_test",
           "SENTRY_ORG": "acme", "SENTRY_PROJECT": "web", "SENTRY_DISABLE_UPDATE_CHECK": "true",
           "SENTRY_NO_PROGRESS_BAR": "1", "SENTRY_LOAD_DOTENV": "0"}
    out = subprocess.run([*SENTRY_CLI, "sourcemaps", "upload", "--wait", str(dist)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return (dist / "app.js").read_text().rsplit("//# debugId=", 1)[1].strip()


async def test_slow_website_does_not_delay_an_uploaded_map(service: ServiceProcess, tmp_path: Path) -> None:
    debug_id = upload_with_sentry_cli(service, tmp_path)
    uploaded = {"abs_path": "https://shop.example.com/app.js", "lineno": NODE["line"] + 2, "colno": NODE["column"]}
    modules = [{"type": "sourcemap", "code_file": uploaded["abs_path"], "debug_id": debug_id}]
    gate = asyncio.Event()
    async with Website() as site:
        site.add_body("/held/app.js", APP)
        site.add_gate("/held/app.js.map", gate, MAP)
        async with aiohttp.ClientSession() as session:
            slow = asyncio.ensure_future(symbolicate(session, service, [frame(site.url("/held/app.js"))]))
            while "/held/app.js.map" not in site.requests:
                await asyncio.sleep(0.02)
            started = time.monotonic()
            fast = await asyncio.wait_for(symbolicate(session, service, [uploaded], "acme/web", modules=modules), 20)
            fast_elapsed = time.monotonic() - started
            assert not slow.done()
            gate.set()
            slow_body = await slow
    assert fast_elapsed < 10.0, fast_elapsed
    assert_mapped(fast["stacktraces"][0]["frames"][0], "debug-id")
    assert_mapped(slow_body["stacktraces"][0]["frames"][0], "scraping")


async def test_fifty_concurrent_events_cause_one_fetch_of_the_map(service: ServiceProcess) -> None:
    async with Website() as site:
        site.add_drip("/many/app.js", APP, first_byte_delay_s=0.3, piece=len(APP))
        site.add_drip("/many/app.js.map", MAP, first_byte_delay_s=0.5, piece=len(MAP))
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:
            bodies = await asyncio.gather(*(symbolicate(session, service, [frame(site.url("/many/app.js"))])
                                            for _ in range(50)))
        assert site.requests.count("/many/app.js.map") == 1, site.requests
        assert site.requests.count("/many/app.js") == 1, site.requests
    for body in bodies:
        assert_mapped(body["stacktraces"][0]["frames"][0], "scraping")
