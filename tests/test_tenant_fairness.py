"""One tenant must not spend what all tenants share (issue 15, items 4, 5, 6 and the DNS part of 11).

Against the real service process and real loopback websites (`tests/support/websites.py`),
whose own request logs are the expectations: what a website saw is what the service sent.
The service runs with small numbers so the tests stay quick: 8 job slots (6 per scope),
4 fetches per host (3 per scope), 5 outbound fetches per request.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest

from symbolicator.config import FetchSettings
from symbolicator.fetch import Fetcher, FetchError
from tests.support.service import ServiceProcess
from tests.support.websites import Website

MAX_JOBS = 8
PER_SCOPE_JOBS = 6
PER_HOST = 4
MAX_FETCHES = 5
DENY_THRESHOLD = 20  # Fetcher's default; 25 failures pass it


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("tenants")
    settings = {"storage": {"backend": "local", "local_dir": str(root / "uploads")},
                "cache": {"dir": str(root / "cache")}, "workers": 1,
                "limits": {"max_concurrent_jobs": MAX_JOBS},
                "fetch": {"allow_private_addresses": True, "per_host_concurrency": PER_HOST,
                          "max_fetches_per_request": MAX_FETCHES, "read_timeout_s": 60.0, "total_timeout_s": 120.0}}
    with ServiceProcess(root, settings) as service:
        yield service


def js_body(*urls: str) -> dict[str, Any]:
    return {"stacktraces": [{"frames": [{"abs_path": u, "lineno": 1, "colno": 1} for u in urls]}],
            "scraping": {"enabled": True, "allowed_origins": ["*"]}}


async def submit(session: aiohttp.ClientSession, svc: ServiceProcess, scope: str, body: dict[str, Any],
                 timeout: str = "60") -> tuple[int, dict[str, Any]]:
    async with session.post(f"{svc.url}/symbolicate-js", params={"scope": scope, "timeout": timeout},
                            json=body) as r:
        return r.status, await r.json()


async def wait_until(condition: Any, what: str, limit_s: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not condition():
        assert loop.time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


def attempts(answer: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {a["url"]: a for a in answer["scraping_attempts"]}


async def test_a_scope_hanging_on_a_slow_site_leaves_slots_for_the_others(svc: ServiceProcess) -> None:
    """Item 4: scope A fills what it may with requests to a site that never answers; scope B is still served,
    by the job registry and by the same website (the host's last slot stays B's)."""
    gate = asyncio.Event()
    run = uuid.uuid4().hex[:8]
    async with Website() as site, aiohttp.ClientSession() as session:
        for i in range(MAX_JOBS):
            site.add_gate(f"/{run}/held/{i}.js", gate, body=b"function f(){}\n")
        site.add_body(f"/{run}/fast.js", b"function g(){}\n", content_type="application/javascript")
        outcomes = [await submit(session, svc, "tenant-a", js_body(site.url(f"/{run}/held/{i}.js")), timeout="0")
                    for i in range(MAX_JOBS)]
        statuses = [status for status, _ in outcomes]
        assert statuses == [200] * PER_SCOPE_JOBS + [503] * (MAX_JOBS - PER_SCOPE_JOBS), outcomes
        assert "limits.max_concurrent_jobs_per_scope" in outcomes[-1][1]["detail"]
        await wait_until(lambda: site.in_flight == PER_HOST - PER_HOST // 4, "scope A holding its share of the host")
        status, answer = await submit(session, svc, "tenant-b", js_body(site.url(f"/{run}/fast.js")), timeout="20")
        assert (status, answer.get("status")) == (200, "completed"), answer
        assert attempts(answer)[site.url(f"/{run}/fast.js")]["status"] == "success"
        assert site.max_in_flight <= PER_HOST
        gate.set()


async def test_failing_frames_block_a_host_only_for_their_own_scope(svc: ServiceProcess) -> None:
    """Item 5: 25 failures from scope A put the host on A's deny list, not on B's."""
    run = uuid.uuid4().hex[:8]
    async with Website() as site, aiohttp.ClientSession() as session:
        for i in range(25):
            site.add_status(f"/{run}/boom/{i}.js", 500)
        site.add_body(f"/{run}/ok.js", b"function h(){}\n", content_type="application/javascript")
        for start in range(0, 25, MAX_FETCHES):
            urls = [site.url(f"/{run}/boom/{i}.js") for i in range(start, start + MAX_FETCHES)]
            status, answer = await submit(session, svc, "tenant-e", js_body(*urls))
            assert status == 200, answer
        status, answer = await submit(session, svc, "tenant-e", js_body(site.url(f"/{run}/ok.js")))
        assert attempts(answer)[site.url(f"/{run}/ok.js")]["reason"] == "denied", answer
        seen = len(site.requests)
        status, answer = await submit(session, svc, "tenant-f", js_body(site.url(f"/{run}/ok.js")))
        assert attempts(answer)[site.url(f"/{run}/ok.js")]["status"] == "success", answer
        assert len(site.requests) == seen + 1


async def test_one_request_fetches_each_url_once_and_at_most_the_budget(svc: ServiceProcess) -> None:
    """Item 6: one failing URL named 20 times costs the website one request; 30 distinct URLs cost MAX_FETCHES."""
    run = uuid.uuid4().hex[:8]
    async with Website() as site, aiohttp.ClientSession() as session:
        site.add_status(f"/{run}/flaky.js", 500)
        status, answer = await submit(session, svc, "tenant-c", js_body(*[site.url(f"/{run}/flaky.js")] * 20))
        assert status == 200, answer
        assert site.requests == [f"/{run}/flaky.js"]
        status, answer = await submit(session, svc, "tenant-c", js_body(*[site.url(f"/{run}/n/{i}.js")
                                                                          for i in range(30)]))
        assert status == 200, answer
        assert len(site.requests) == 1 + MAX_FETCHES, site.requests
        over = [a for a in answer["scraping_attempts"] if "fetch.max_fetches_per_request" in a.get("details", "")]
        assert len(over) == 30 - MAX_FETCHES and all(a["reason"] == "other" for a in over), answer
        errors = {e["abs_path"]: e["type"] for e in answer["errors"]}
        assert errors == {site.url(f"/{run}/n/{i}.js"): "missing_source" for i in range(30)}, answer["errors"]
        # The budget is per request: the next one fetches again, a URL the first one left over (which
        # ones it fetched depends on the order its fetches ran in; a fetched 404 is remembered).
        left_over = next(p for p in (f"/{run}/n/{i}.js" for i in range(30)) if p not in site.requests)
        status, answer = await submit(session, svc, "tenant-c", js_body(site.url(left_over)))
        assert site.requests[-1] == left_over, site.requests


@pytest.mark.parametrize("host", ["a" * 64 + ".example", "bad-.example", "-bad.example", "x..example",
                                  "1.2.3.999", "a." * 127 + "com", "under_score-.example"])
async def test_host_names_that_cannot_be_valid_never_reach_dns(host: str) -> None:
    """Item 11: refused before the resolver is asked; `resolved` stays empty."""
    resolved: list[str] = []

    class Counting(aiohttp.ThreadedResolver):
        async def resolve(self, host: str, port: int = 0, family: Any = 0) -> Any:
            resolved.append(host)
            return await super().resolve(host, port, family)

    fetcher = Fetcher(FetchSettings(), dns_resolver=Counting)
    try:
        with pytest.raises(FetchError) as caught:
            await fetcher.fetch(f"http://{host}/app.js")
    finally:
        await fetcher.close()
    assert caught.value.reason == "invalid_host", caught.value
    assert "cannot be valid" in str(caught.value)
    assert resolved == []


async def test_invalid_host_name_is_reported_in_scraping_attempts(svc: ServiceProcess) -> None:
    url = f"http://{'a' * 64}.example/app.js"
    async with aiohttp.ClientSession() as session:
        status, answer = await submit(session, svc, "tenant-d", js_body(url))
    assert status == 200
    assert attempts(answer)[url]["reason"] == "invalid_host", answer
