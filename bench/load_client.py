"""A closed-loop HTTP load client (wrk-style), run as its own process by `bench/service_load.py`.

    python -m bench.load_client SPEC.json        # prints one JSON report on stdout

It lives in a separate process so that the service's figures include the whole
HTTP round trip and the client's own CPU never runs on the service's event loop.
`concurrency` workers each keep exactly one request in flight, cycling through
the events (bodies are serialised once, up front, so the client spends its CPU
on sockets, not on JSON). New requests start until `duration_s` has passed;
requests already in flight then finish and count. A request counts as ok when
the answer is HTTP 200 with Symbolicator's `completed` envelope; everything
else is counted by kind (`http 503`, `envelope failed`, `ClientError`, …).

The report carries every latency too (`latencies_ms`, in completion order),
so runs can be pooled. `background` requests start with the window and are reported apart (ok, error,
seconds): the slow-origin scrapes or the big conversion of the isolation
figures. With `stop_with_background` the window ends as soon as they have all
answered, so the figures describe only the time they were under way.

Spec (JSON): `url`, `event_files` (JSON lists of `{"path", "body"}`, POSTed,
or `{"path", "expect"}`, a GET that must answer exactly `expect`; several
files are interleaved), `concurrency`, `duration_s`, optional `background`
(a list of `{"path", "body"}`), `stop_with_background`, `timeout_s`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

COMPLETED = b'"status":"completed"'


@dataclass(frozen=True)
class Call:
    """One prepared request: a path (with query) and its serialised JSON body (None: a GET).

    `expect` is the exact body a GET must answer (the health check's `ok`).
    """

    path: str
    body: bytes | None
    expect: bytes | None = None

    @classmethod
    def of(cls, event: dict[str, Any]) -> Call:
        if "body" not in event:
            return cls(event["path"], None, str(event.get("expect", "")).encode())
        return cls(event["path"], orjson.dumps(event["body"]))


@dataclass
class Tally:
    """What the workers saw: latencies (seconds) of ok answers, error counts by kind."""

    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def load_calls(files: list[str]) -> list[Call]:
    """Events of every file, interleaved (a, b, a, b, …) so a mixed load alternates kinds."""
    lists = [[Call.of(e) for e in json.loads(Path(f).read_text())] for f in files]
    mixed = [c for group in itertools.zip_longest(*lists) for c in group if c is not None]
    if not mixed:
        raise SystemExit("no events to send")
    return mixed


async def send(session: aiohttp.ClientSession, url: str, call: Call) -> tuple[str | None, bytes]:
    """(None, body) for a completed answer, else (error kind, body)."""
    try:
        if call.body is None:
            request = session.get(url + call.path)
        else:
            request = session.post(url + call.path, data=call.body, headers={"Content-Type": "application/json"})
        async with request as resp:
            body = await resp.read()
            if resp.status != 200:
                return f"http {resp.status}", body
    except (aiohttp.ClientError, TimeoutError) as exc:
        return type(exc).__name__, b""
    if (body == call.expect) if call.body is None else (COMPLETED in body[:64]):
        return None, body
    try:
        envelope = orjson.loads(body).get("status", "?")
    except (orjson.JSONDecodeError, AttributeError):
        envelope = "not JSON"
    return f"envelope {envelope}", body


async def background(session: aiohttp.ClientSession, url: str, call: Call, t0: float) -> dict[str, Any]:
    error, body = await send(session, url, call)
    return {"ok": error is None, "error": error, "seconds": time.perf_counter() - t0, "bytes": len(body)}


async def run(spec: dict[str, Any]) -> dict[str, Any]:
    url = spec["url"].rstrip("/")
    calls = load_calls(spec["event_files"])
    concurrency = int(spec["concurrency"])
    duration = float(spec["duration_s"])
    extra = [Call.of(b) for b in spec.get("background", [])]
    timeout = aiohttp.ClientTimeout(total=float(spec.get("timeout_s", 300)))
    connector = aiohttp.TCPConnector(limit=0, limit_per_host=0, force_close=False)
    tally = Tally()
    counter = itertools.count()
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        bg = [asyncio.ensure_future(background(session, url, c, t0)) for c in extra]
        stop = asyncio.Event()

        async def stop_later() -> None:
            if bg and spec.get("stop_with_background"):
                await asyncio.wait(bg, timeout=duration)
            else:
                await asyncio.sleep(duration)
            stop.set()

        async def worker() -> None:
            while not stop.is_set():
                call = calls[next(counter) % len(calls)]
                started = time.perf_counter()
                error, _ = await send(session, url, call)
                if error is None:
                    tally.latencies.append(time.perf_counter() - started)
                else:
                    tally.error(error)

        stopper = asyncio.ensure_future(stop_later())
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        window = time.perf_counter() - t0
        await stopper
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        finished = await asyncio.gather(*bg)
    lat = sorted(tally.latencies)
    return {
        "concurrency": concurrency, "window_s": window, "ok": len(lat),
        "errors": tally.errors, "events_per_s": len(lat) / window if window else 0.0,
        "p50_s": percentile(lat, 50), "p90_s": percentile(lat, 90), "p99_s": percentile(lat, 99),
        "max_s": lat[-1] if lat else None,
        "client_cpu_s": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "background": finished, "latencies_ms": [round(x * 1000, 3) for x in tally.latencies],
    }


def percentile(sorted_values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (the value below which `pct`% of the samples fall)."""
    if not sorted_values:
        return None
    rank = max(1, -(-len(sorted_values) * pct // 100))
    return sorted_values[int(rank) - 1]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    try:
        import uvloop

        result = uvloop.run(run(spec))
    except ImportError:  # pragma: no cover - uvloop is a dependency of the service
        result = asyncio.run(run(spec))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
