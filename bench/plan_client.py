"""The plan client: POSTs a planned list of requests to the service from its own process.

    python -m bench.plan_client PLAN.json OUT.json

The benches run the service, SeaweedFS, the counting proxy and the origin site;
the client that fires requests at them runs here, in a separate interpreter, so
its JSON encoding and decoding never shares a CPU slice (or a GIL) with the
servers it is measuring.

PLAN: `{"base_url": str, "concurrency": int, "requests": [{"path": str, "body": any}, …]}`;
every request is sent once, at most `concurrency` at a time (a burst sets it to
the number of requests, so all of them are in flight together).
OUT: one entry per request, in plan order: `{"status": int, "seconds": float, "body": any}`
(`body` parsed JSON, or the text when it is not JSON; `status` 0 for a connection error).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp


async def _one(session: aiohttp.ClientSession, limit: asyncio.Semaphore, url: str, body: Any) -> dict[str, Any]:
    async with limit:
        started = time.perf_counter()
        try:
            async with session.post(url, json=body) as resp:
                text = await resp.text()
                status = resp.status
        except aiohttp.ClientError as exc:
            return {"status": 0, "seconds": time.perf_counter() - started, "body": repr(exc)}
        seconds = time.perf_counter() - started
    try:
        parsed: Any = json.loads(text)
    except ValueError:
        parsed = text
    return {"status": status, "seconds": seconds, "body": parsed}


async def run_plan(plan: dict[str, Any]) -> list[dict[str, Any]]:
    concurrency = int(plan["concurrency"])
    limit = asyncio.Semaphore(concurrency)
    base = str(plan["base_url"]).rstrip("/")
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        return list(await asyncio.gather(*(_one(session, limit, base + r["path"], r["body"])
                                           for r in plan["requests"])))


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text())
    results = asyncio.run(run_plan(plan))
    Path(argv[1]).write_text(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
