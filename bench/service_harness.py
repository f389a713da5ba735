"""The moving parts around the service under load: the slow origin, uploads, the load clients, py-spy.

Each piece starts a process or a server and is written so that the caller's
`ExitStack` stops it whatever happens (an error, Ctrl-C, SIGTERM): the load
client is killed if it outlives its call, the slow origin's thread is stopped,
py-spy is killed with its target's figures or without them.
"""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiohttp import web

from bench.inputs import REPO
from tests.support.websites import Website

SLOW_BODY = b"function boom(){throw new Error('from the slow origin')}\nboom();\n"


class SlowOrigin:
    """A real aiohttp server on 127.0.0.1, in its own thread, that answers each path after `delay_s`."""

    def __init__(self, paths: Sequence[str], delay_s: float) -> None:
        self.paths = paths
        self.delay_s = delay_s
        self.site = Website()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="slow-origin", daemon=True)

    @property
    def base_url(self) -> str:
        return self.site.base_url

    def __enter__(self) -> SlowOrigin:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.site.start(), self._loop).result(10)

        async def slow(request: web.Request) -> web.StreamResponse:
            await asyncio.sleep(self.delay_s)
            return web.Response(body=SLOW_BODY, content_type="application/javascript")

        for path in self.paths:
            self.site.add(path, slow)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self.site.stop(), self._loop).result(10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop.close()


def upload(url: str, scope: str, release: str, paths: Sequence[Path]) -> float:
    """`symbolicator upload --wait` (the real client and protocol); its wall time in seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "symbolicator", "upload", "--url", url, "--scope", scope,
                           "--release", release, "--wait", "--no-progress", "--no-compression",
                           *map(str, paths)], cwd=REPO, capture_output=True, text=True, timeout=1800, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"upload failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return time.perf_counter() - t0


def run_load(workdir: Path, url: str, event_files: Sequence[Path], concurrency: int, duration_s: float,
             background: Sequence[dict[str, Any]] = (), stop_with_background: bool = False) -> dict[str, Any]:
    """One closed-loop run of `bench/load_client.py` in its own process; its JSON report."""
    spec = {"url": url, "event_files": [str(f) for f in event_files], "concurrency": concurrency,
            "duration_s": duration_s, "background": list(background),
            "stop_with_background": stop_with_background, "timeout_s": 600}
    path = workdir / f"load-spec-{concurrency}.json"
    path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, "-m", "bench.load_client", str(path)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = proc.communicate(timeout=duration_s + 900)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"load client failed ({proc.returncode}):\n{err[-3000:]}")
    result: dict[str, Any] = json.loads(out)
    return result


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(workdir: Path, url: str, events_file: Path, concurrency: int, duration_s: float) -> dict[str, Any]:
    """A closed-loop run of `wrk` (C, one thread) with `bench/wrk_post.lua` over the events of `events_file`.

    The same figures as `run_load`, from a client whose own time per request is a few
    microseconds: the aiohttp client spends ~0.3 ms of Python on each 100 KB answer, which
    is the client's cost, not the service's.
    """
    tsv = workdir / (events_file.stem + ".tsv")
    events = json.loads(events_file.read_text())
    tsv.write_bytes(b"".join(e["path"].encode() + b"\t" + (orjson.dumps(e["body"]) if "body" in e else b"") + b"\n"
                             for e in events))
    proc = subprocess.run(["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration_s))}s", "--timeout", "60s",
                           "-s", str(REPO / "bench" / "wrk_post.lua"), url, "--", str(tsv)],
                          capture_output=True, text=True, timeout=duration_s + 120, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    out = json.loads(lines[-1])
    window = out["duration_us"] / 1e6
    errors = {k: n for k, n in (("not completed", out["errors"]), ("socket", out["socket_errors"])) if n}
    ok = out["requests"] - out["errors"]
    return {"concurrency": concurrency, "window_s": window, "ok": ok, "errors": errors,
            "events_per_s": ok / window if window else 0.0, "p50_s": out["p50_us"] / 1e6,
            "p90_s": out["p90_us"] / 1e6, "p99_s": out["p99_us"] / 1e6, "max_s": out["max_us"] / 1e6,
            "client": "wrk", "background": []}


def handler_seconds(url: str, route: str) -> tuple[float, float]:
    """(sum of seconds, count) of the service's own request-duration histogram for `route`: the time
    from the first middleware to the response object, without HTTP parsing or socket writes."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    found = {"sum": 0.0, "count": 0.0}
    for part in found:
        prefix = f'symbolicator_http_request_duration_seconds_{part}{{route="{route}"}} '
        for line in text.splitlines():
            if line.startswith(prefix):
                found[part] = float(line[len(prefix):])
    return found["sum"], found["count"]


async def _answer_all(url: str, events: Sequence[dict[str, Any]], concurrency: int) -> list[dict[str, Any]]:
    limit = asyncio.Semaphore(concurrency)
    timeout = aiohttp.ClientTimeout(total=900)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        async def one(event: dict[str, Any]) -> dict[str, Any]:
            async with limit, session.post(url + event["path"], json=event["body"]) as resp:
                body: dict[str, Any] = await resp.json(content_type=None)
                if resp.status != 200 or body.get("status") != "completed":
                    raise RuntimeError(f"{event['path']}: HTTP {resp.status}: {str(body)[:500]}")
                return body

        return await asyncio.gather(*(one(e) for e in events))


def answer_all(url: str, events: Sequence[dict[str, Any]], concurrency: int = 4) -> list[dict[str, Any]]:
    """Every event once (this warms the service): the parsed answers, in order."""
    return asyncio.run(_answer_all(url, events, concurrency))


def metric(url: str, name: str) -> float:
    """One unlabelled counter from `/metrics` (0 when absent)."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def py_spy_available() -> bool:
    return shutil.which("py-spy") is not None


def profile_during(pid: int, seconds: float, work: Callable[[], Any], out: Path) -> tuple[Any, str]:
    """Run `work` while py-spy samples process `pid`; (work's result, top entries by own time)."""
    proc = subprocess.Popen(["py-spy", "record", "-p", str(pid), "-d", str(max(1, int(seconds))), "-r", "200",
                             "-f", "raw", "-o", str(out), "--nonblocking"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        result = work()
        proc.wait(timeout=seconds + 60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return result, own_time_summary(out) if out.exists() else f"py-spy wrote nothing: {proc.stderr and proc.stderr.read()}"


def own_time_summary(collapsed: Path, top: int = 25) -> str:
    """Collapsed stacks → the functions where samples land (own time) and whole-stack shares of a few."""
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        own[stack.split(";")[-1].strip()] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples (py-spy at 200 Hz, idle threads left out); own time:"]
    lines += [f"{n / total:6.1%}  {name.replace(str(REPO) + '/', '')}" for name, n in own.most_common(top)]
    return "\n".join(lines)
