"""The load client of the chaos scenarios: many concurrent clients that account for every request.

    python -m chaos.load SPEC.json OUT.json      # progress on stderr, the report in OUT.json

It runs in its own process (its CPU is not the service's), with aiohttp. Each of
`clients` clients keeps one request in flight and behaves like Sentry's ingest
client: it sends with `?timeout=wait_s`; a `pending` answer is long-polled at
`GET /requests/{id}?timeout=wait_s` until it is done; a 503 is an answer too,
after which the client waits the `Retry-After` it was given before its next
request. New requests start until `duration_s` has passed; requests under way
then get `drain_s` more to finish.

Every request ends as exactly one outcome, so "nothing lost" is a count:
`completed` (straight away), `completed after polling`, `503` (with Retry-After)
and `wrong answer` (completed, but not the answer the spec expects) are answers;
`envelope <status>` and `http <code>` are answers that are errors; `lost: …`
(the connection failed, the client timed out, a polled id was unknown) and
`unanswered` (still running at the drain deadline) are not answers at all.

Spec (JSON): `url`, `scope`, `clients`, `duration_s`, `wait_s`, `drain_s`,
`request_timeout_s`, `stop_file` (optional: the window also ends as soon as this
file exists, for callers whose faults take a time they cannot know ahead), `kinds`: a list of `{name, path, bodies: [JSON…], check}`;
client `i` sends kind `i % len(kinds)`, cycling through its bodies. `check`
(optional) is `{"fields": [...], "values": [[...], ...]}`: the frames of the
answer's first stack trace, each reduced to those fields, must equal `values`,
or the outcome is `wrong answer`. With `events: true` the report lists every
request as `[start s, end s, kind index, outcome]`, relative to `started_at`
(Unix time, so the caller can line them up with the faults it injected).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson

ANSWERED = ("completed", "completed after polling", "503", "wrong answer")


def frames_as(answer: dict[str, Any], fields: list[str]) -> list[list[Any]]:
    """The first stack trace's frames reduced to `fields`: what a `check` compares."""
    traces = answer.get("stacktraces") or [{}]
    return [[f.get(name) for name in fields] for f in traces[0].get("frames", [])]


@dataclass
class Kind:
    """One kind of request: its bodies (serialised once) and what each client saw of it."""

    name: str
    path: str
    bodies: list[bytes]
    check: dict[str, Any] | None
    sent: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    polls: int = 0
    retry_after_missing: int = 0
    next_body: int = 0

    def body(self) -> bytes:
        self.next_body += 1
        return self.bodies[(self.next_body - 1) % len(self.bodies)]

    def count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


class Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.base = spec["url"].rstrip("/")
        self.scope = quote(spec.get("scope", ""), safe="")
        self.wait_s = float(spec.get("wait_s", 5))
        self.kinds = [Kind(k["name"], k["path"], [orjson.dumps(b) for b in k["bodies"]], k.get("check"))
                      for k in spec["kinds"]]
        self.events: list[list[Any]] | None = [] if spec.get("events") else None
        self.in_flight = 0
        self.started = 0.0
        self.started_at = 0.0
        self.stop_file = Path(spec["stop_file"]) if spec.get("stop_file") else None
        self.stopping = False
        self.window_s = 0.0

    def _url(self, path: str) -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}{path}{sep}timeout={self.wait_s:g}&scope={self.scope}"

    async def _send(self, session: aiohttp.ClientSession, kind: Kind, body: bytes) -> tuple[str, float]:
        """One request to its end: (outcome, seconds to wait before the next one)."""
        try:
            async with session.post(self._url(kind.path), data=body,
                                    headers={"Content-Type": "application/json"}) as r:
                payload, status, retry = await r.read(), r.status, r.headers.get("Retry-After")
            if status == 503:
                if retry is None or not retry.isdigit():
                    kind.retry_after_missing += 1
                    return "503", 5.0
                return "503", float(retry)
            if status != 200:
                return f"http {status}", 0.0
            answer = orjson.loads(payload)
            polled = False
            while answer.get("status") == "pending":
                polled = True
                kind.polls += 1
                async with session.get(self._url(f"/requests/{answer['request_id']}")) as r:
                    payload, status = await r.read(), r.status
                if status == 404:
                    return "lost: unknown request id", 0.0
                if status != 200:
                    return f"http {status} on poll", 0.0
                answer = orjson.loads(payload)
            if answer.get("status") != "completed":
                return f"envelope {answer.get('status')}", 0.0
            if kind.check is not None and frames_as(answer, kind.check["fields"]) != kind.check["values"]:
                return "wrong answer", 0.0
            return ("completed after polling" if polled else "completed"), 0.0
        except TimeoutError:
            return "lost: client timeout", 0.0
        except aiohttp.ClientError as exc:
            return f"lost: {type(exc).__name__}", 0.0

    async def _client(self, session: aiohttp.ClientSession, kind_index: int, end: float) -> None:
        kind = self.kinds[kind_index]
        while time.monotonic() < end and not self.stopping:
            body = kind.body()
            kind.sent += 1
            self.in_flight += 1
            t0 = time.monotonic()
            try:
                outcome, pause = await self._send(session, kind, body)
            except asyncio.CancelledError:
                kind.count("unanswered")
                self._event(t0, kind_index, "unanswered")
                raise
            finally:
                self.in_flight -= 1
            kind.count(outcome)
            if outcome.startswith("completed"):
                kind.latencies.append(time.monotonic() - t0)
            self._event(t0, kind_index, outcome)
            if pause:
                await asyncio.sleep(min(pause, max(0.0, end - time.monotonic())))

    def _event(self, t0: float, kind_index: int, outcome: str) -> None:
        if self.events is not None:
            self.events.append([round(t0 - self.started, 3), round(time.monotonic() - self.started, 3),
                                kind_index, outcome])

    async def _progress(self, end: float) -> None:
        while True:
            await asyncio.sleep(5)
            sent = sum(k.sent for k in self.kinds)
            done = sum(sum(k.outcomes.values()) for k in self.kinds)
            phase = "load" if time.monotonic() < end else "drain"
            print(f"  [load {time.monotonic() - self.started:5.0f} s, {phase}] sent {sent}, finished {done}, "
                  f"in flight {self.in_flight}", file=sys.stderr, flush=True)

    async def run(self) -> dict[str, Any]:
        spec = self.spec
        timeout = aiohttp.ClientTimeout(total=float(spec.get("request_timeout_s", 120)))
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
            self.started, self.started_at = time.monotonic(), time.time()
            end = self.started + float(spec["duration_s"])
            progress = asyncio.ensure_future(self._progress(end))
            clients = [asyncio.ensure_future(self._client(session, i % len(self.kinds), end))
                       for i in range(int(spec["clients"]))]
            while time.monotonic() < end and not self.stopping:
                await asyncio.sleep(0.2)
                self.stopping = self.stop_file is not None and self.stop_file.exists()
            drain_started = time.monotonic()
            self.window_s = drain_started - self.started
            _, unfinished = await asyncio.wait(clients, timeout=float(spec.get("drain_s", 300)))
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
            drained = time.monotonic() - drain_started
            progress.cancel()
        return self._report(drained, len(unfinished))

    def _report(self, drained: float, unfinished: int) -> dict[str, Any]:
        kinds = {}
        for k in self.kinds:
            lat = sorted(k.latencies)
            kinds[k.name] = {
                "sent": k.sent,
                "outcomes": dict(sorted(k.outcomes.items())),
                "answered": sum(n for o, n in k.outcomes.items() if o in ANSWERED or o.startswith(("http", "envelope"))),
                "polls": k.polls,
                "retry_after_missing": k.retry_after_missing,
                "latency_s": {"p50": _pct(lat, 0.5), "p95": _pct(lat, 0.95), "max": lat[-1] if lat else None},
            }
        report: dict[str, Any] = {
            "started_at": self.started_at, "clients": self.spec["clients"], "window_s": round(self.window_s, 1),
            "drain_s": round(drained, 1),
            "unfinished_at_deadline": unfinished, "kinds": kinds,
            "sent": sum(k["sent"] for k in kinds.values()),
            "answered": sum(k["answered"] for k in kinds.values()),
        }
        if self.events is not None:
            report["events"] = self.events
        return report


def _pct(values: list[float], q: float) -> float | None:
    return round(values[min(len(values) - 1, int(q * len(values)))], 3) if values else None


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m chaos.load SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(argv[0]).read_text())
    report = asyncio.run(Load(spec).run())
    Path(argv[1]).write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
