"""`python -m bench.big_bodies LABEL`: how long bodies of many empty entries hold the service (issue 15, item 7).

Two bodies that carry no frame but many entries: a million empty stack traces (3 MB) and
300,000 modules (26 MB). For each, twice, the time until the service answers and the worst
`/healthcheck` latency meanwhile (a ping every 20 ms from the same client), which is how
long the event loop was held. The service runs from whatever `PYTHONPATH` points at, so
the same command measures two revisions (e.g. a `git archive` of the old one):

    PYTHONPATH=/tmp/old python -m bench.big_bodies before
    PYTHONPATH=$PWD python -m bench.big_bodies after
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from tests.support.service import ServiceProcess


async def measure(url: str, body: bytes) -> tuple[int, float, float]:
    """(HTTP status, seconds to the answer, worst /healthcheck seconds meanwhile)."""
    worst = 0.0
    async with aiohttp.ClientSession() as session:
        async def ping() -> None:
            nonlocal worst
            while True:
                started = time.monotonic()
                async with session.get(url + "/healthcheck") as r:
                    await r.text()
                worst = max(worst, time.monotonic() - started)
                await asyncio.sleep(0.02)

        pinger = asyncio.ensure_future(ping())
        await asyncio.sleep(0.2)
        started = time.monotonic()
        async with session.post(url + "/symbolicate", data=body, headers={"Content-Type": "application/json"}) as r:
            status = r.status
            await r.read()
        took = time.monotonic() - started
        pinger.cancel()
    return status, took, worst


def main(label: str) -> None:
    traces = b'{"stacktraces": [' + b",".join([b"{}"] * 1_000_000) + b'], "modules": []}'
    module = b'{"type":"elf","debug_id":"00000000-0000-0000-0000-000000000000","image_addr":"0x1000"}'
    modules = b'{"stacktraces": [], "modules": [' + b",".join([module] * 300_000) + b"]}"
    root = Path(tempfile.mkdtemp(prefix="big-bodies-"))
    settings = {"storage": {"backend": "local", "local_dir": str(root / "uploads")}, "cache": {"dir": str(root / "cache")},
                "workers": 1, "scraping": {"enabled": False}, "limits": {"max_body_bytes": 64 << 20}}
    with ServiceProcess(root, settings) as svc:
        for name, body in ((f"1e6 empty stack traces ({len(traces) / 1e6:.1f} MB)", traces),
                           (f"300k modules ({len(modules) / 1e6:.1f} MB)", modules)):
            for _ in range(2):
                status, took, worst = asyncio.run(measure(svc.url, body))
                print(f"{label}: {name}: HTTP {status} in {took:.2f} s, worst /healthcheck {worst:.2f} s", flush=True)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "run")
