"""Sentry's JS ingest loop, replayed against the real service (reference §5).

`SentryIngestClient` does what `src/sentry/lang/native/symbolicator.py` does for
JavaScript: POST `/symbolicate-js?timeout=5&scope=<numeric project id>` with the
`x-sentry-*` headers and a body holding a `source` of type `sentry`; on
`pending`, long-poll `GET /requests/{id}?timeout=5` with no sleep; on 404 (the
service restarted and forgot the job) resubmit the whole task; on 502/503 rotate
the worker id and back off; on connection errors retry up to three times.

The map lives on a loopback website that holds its answer until the test opens a
gate, so the first answer is `pending` for real. The second event restarts the
service while its job is pending, so the poll meets a 404 and the client
resubmits.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any, Callable

import requests
from aiohttp import web

from tests.support.service import ServiceProcess
from tests.support.websites import Website

REPO = Path(__file__).resolve().parent.parent
JS = REPO / "tests" / "fixtures" / "js"
APP = (JS / "out/esbuild/app.js").read_bytes()
MAP = (JS / "out/esbuild/app.js.map").read_bytes()
POLL_TIMEOUT = 5
PROJECT_ID = "42"


class SentryIngestClient:
    """A synchronous replay of Sentry's `Symbolicator._process` loop for one event."""

    def __init__(self, base_url: Callable[[], str], on_pending: Callable[[int], None] | None = None) -> None:
        self.base_url = base_url
        self.on_pending = on_pending or (lambda n: None)
        self.log: list[str] = []

    def symbolicate_js(self, body: dict[str, Any]) -> dict[str, Any]:
        worker_id, event_id = uuid.uuid4().hex, uuid.uuid4().hex
        task_id: str | None = None
        backoff, network_retries, pending = 0.1, 0, 0
        while True:
            params = {"timeout": str(POLL_TIMEOUT), "scope": PROJECT_ID}
            headers = {"x-sentry-project-id": PROJECT_ID, "x-sentry-event-id": event_id,
                       "x-sentry-worker-id": worker_id}
            try:
                if task_id is None:
                    r = requests.post(f"{self.base_url()}/symbolicate-js", params=params, json=body, headers=headers,
                                      timeout=POLL_TIMEOUT + 1)
                else:
                    r = requests.get(f"{self.base_url()}/requests/{task_id}", params=params, headers=headers,
                                     timeout=POLL_TIMEOUT + 1)
            except requests.ConnectionError:
                network_retries += 1
                if network_retries > 3:
                    raise
                time.sleep(0.5 * 2 ** (network_retries - 1))
                continue
            if r.status_code == 404 and task_id is not None:
                self.log.append("404")
                task_id = None
                continue
            if r.status_code in (502, 503):
                self.log.append(str(r.status_code))
                worker_id, task_id = uuid.uuid4().hex, None
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            if not r.ok:
                return {"status": "failed", "message": "internal server error"}
            answer: dict[str, Any] = r.json()
            self.log.append(answer["status"])
            if answer["status"] == "pending":
                assert answer["retry_after"] == 30
                task_id = answer["request_id"]
                pending += 1
                self.on_pending(pending)
                continue
            return answer


def settings(work: Path) -> dict[str, Any]:
    return {
        "storage": {"backend": "local", "local_dir": str(work / "uploads")},
        "cache": {"dir": str(work / "cache")},
        "scope_aliases": {PROJECT_ID: "acme/web"},
        "fetch": {"allow_private_addresses": True},
        "workers": 1,
    }


def sentry_body(abs_path: str) -> dict[str, Any]:
    """What Sentry's `process_js_stacktraces` sends: frames cut to four fields, a `sentry` source."""
    return {
        "platform": "javascript",
        "source": {"type": "sentry", "id": "sentry:project",
                   "url": "http://sentry.internal/api/0/projects/acme/web/artifact-lookup/", "token": "secret"},
        "stacktraces": [{"frames": [{"abs_path": abs_path, "lineno": 1, "colno": 516, "function": "e"}]}],
        "modules": [],
        "release": "web@1.0.0",
        "dist": None,
        "options": {"apply_source_context": True},
        "scraping": {"enabled": True, "allowed_origins": ["*"], "headers": {"X-Sentry-Token": "project-token"}},
    }


async def test_sentry_ingest_loop_polls_and_resubmits_after_a_restart(tmp_path: Path) -> None:
    services = [ServiceProcess(tmp_path, settings(tmp_path))]
    services[0].start()
    gates = {"/one/app.js.map": asyncio.Event(), "/two/app.js.map": asyncio.Event()}
    seen_tokens: list[str | None] = []
    loop = asyncio.get_running_loop()

    def held_map(path: str) -> Callable[[web.Request], Any]:
        async def handler(request: web.Request) -> web.StreamResponse:
            seen_tokens.append(request.headers.get("X-Sentry-Token"))
            await gates[path].wait()
            return web.Response(body=MAP, content_type="application/json")
        return handler

    def restart(pending: int) -> None:
        if pending == 1:
            old = services[-1]
            old.kill()
            new = ServiceProcess(tmp_path, {**settings(tmp_path), "bind": f"127.0.0.1:{old.port}"})
            new.port = old.port
            services.append(new.start())
            loop.call_soon_threadsafe(gates["/two/app.js.map"].set)

    try:
        async with Website() as site:
            for name in ("one", "two"):
                site.add_body(f"/{name}/app.js", APP)
                site.add(f"/{name}/app.js.map", held_map(f"/{name}/app.js.map"))
            base = lambda: services[-1].url  # noqa: E731

            first = SentryIngestClient(base, lambda n: loop.call_soon_threadsafe(gates["/one/app.js.map"].set))
            started = time.monotonic()
            answer = await asyncio.to_thread(first.symbolicate_js, sentry_body(site.url("/one/app.js")))
            assert time.monotonic() - started >= POLL_TIMEOUT
            assert compact(first.log) == ["pending", "completed"], first.log
            check_mapped(answer)

            second = SentryIngestClient(base, restart)
            answer = await asyncio.to_thread(second.symbolicate_js, sentry_body(site.url("/two/app.js")))
            assert compact(second.log) == ["pending", "404", "pending", "completed"] \
                or compact(second.log) == ["pending", "404", "completed"], second.log
            check_mapped(answer)
            assert len(services) == 2
            assert site.requests.count("/two/app.js.map") == 2
            r = requests.get(f"{base()}/requests/{uuid.uuid4()}", params={"timeout": "1", "scope": PROJECT_ID},
                             timeout=5)
            assert r.status_code == 404 and "detail" in r.json()
        assert seen_tokens and set(seen_tokens) == {"project-token"}
    finally:
        for svc in services:
            svc.stop()


def compact(log: list[str]) -> list[str]:
    """The client's log with repeated `pending` answers (a slow machine) counted once."""
    return [entry for i, entry in enumerate(log) if i == 0 or entry != log[i - 1]]


def check_mapped(answer: dict[str, Any]) -> None:
    assert answer["status"] == "completed", answer
    frame = answer["stacktraces"][0]["frames"][0]
    assert frame["abs_path"].endswith("/src/shop/cart.ts") and (frame["lineno"], frame["colno"]) == (44, 13)
    assert frame["data"]["resolved_with"] == "scraping" and frame["data"]["symbolicated"] is True
    assert answer["raw_stacktraces"][0]["frames"][0]["context_line"].startswith("{snip} ")
    assert answer["errors"] == []
    assert [a["status"] for a in answer["scraping_attempts"]] == ["success", "success"]
