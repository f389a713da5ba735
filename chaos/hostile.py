"""Scenarios `slow-clients` and `hostile-tenant`: one caller trying to take the service from the others.

`slow-clients` (issue 15, item 8): 3,000 connections that send half a request header and
200 that trickle a body declared as 50 MB, all at once, while an honest client keeps
symbolicating an uploaded debug file. The header and body deadlines and the connection cap
must close every slow connection in time (each is watched until the service closes it),
the honest client's answers must stay right, and memory must stay bounded.

`hostile-tenant` (items 4 and 6): one scope floods the service with requests whose frames
point at a website that answers each file only after 10 s, each request naming 50 distinct
URLs there; another scope symbolicates the same uploaded debug file throughout. The victim
must never get a 503 nor a wrong answer, the hostile scope's extra requests must get 503
naming `limits.max_concurrent_jobs_per_scope`, and the website must see at most
`fetch.max_fetches_per_request` requests per hostile request.

Both run in this process with plain sockets and threads: the load is small, what matters
is what the slow connections and the hostile scope cost the others.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import requests

from chaos.rig import REPO, MemorySampler, Result, pid_of, say, service_settings
from chaos.workload import (
    SCOPE,
    WARM_ELF,
    WARM_FUNCTIONS,
    native_body,
    native_ok,
    uploaded,
)
from tests.support.service import ServiceProcess

RSS_LIMIT_KIB = 2 * 1024 * 1024


def _honest(svc: ServiceProcess, body: dict[str, Any], scope: str, stop: threading.Event, result: Result,
            kind: str) -> None:
    """Symbolicate `body` as `scope` again and again until `stop`; every outcome counted under `kind`."""
    with requests.Session() as session:
        while not stop.is_set():
            try:
                r = session.post(f"{svc.url}/symbolicate", json=body, params={"scope": scope}, timeout=60)
            except requests.RequestException as exc:
                result.count(kind, f"connection error ({type(exc).__name__})")
                time.sleep(0.05)
                continue
            if r.status_code != 200:
                result.count(kind, f"http {r.status_code}")
            elif native_ok(r.json(), WARM_FUNCTIONS):
                result.count(kind, "right answer")
            else:
                result.count(kind, "wrong answer")


def _slow_connection(port: int, request: bytes, trickle: bytes, deadline_s: float,
                     closed_after: list[float], result: Result, kind: str) -> None:
    """Send `request`, then `trickle` every 0.5 s until the service closes the connection (or `deadline_s`)."""
    started = time.monotonic()
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    except OSError:
        result.count(kind, "refused at connect")
        return
    received = b""
    try:
        sock.sendall(request)
        sock.settimeout(0.5)
        while time.monotonic() - started < deadline_s:
            try:
                data = sock.recv(4096)
            except TimeoutError:
                if trickle:
                    sock.sendall(trickle)
                continue
            if not data:
                break
            received += data
        else:
            result.count(kind, "still open at the end")
            return
    except OSError:
        pass
    finally:
        sock.close()
    closed_after.append(time.monotonic() - started)
    status = received.split(b"\r\n", 1)[0].decode(errors="replace")
    result.count(kind, f"answered `{status}`, then closed" if status else "closed by the service")


def slow_clients(root: Path, quick: bool) -> Result:
    headers_n, bodies_n = (300, 20) if quick else (3000, 200)
    header_s, body_s = (2.0, 4.0) if quick else (10.0, 30.0)
    result = Result("slow-clients", f"{headers_n} half-sent headers and {bodies_n} bodies trickled into a 50 MB "
                    f"Content-Length, at once, beside an honest client (header deadline {header_s:g} s, body "
                    f"deadline {body_s:g} s, default connection cap)")
    settings = service_settings(root, limits={"header_timeout_s": header_s, "body_timeout_s": body_s})
    svc = ServiceProcess(root, settings)
    with svc, MemorySampler(pid_of(svc), interval_s=0.2, limit_kib=RSS_LIMIT_KIB) as sampler:
        uploaded(svc, WARM_ELF)
        body = native_body(WARM_ELF, WARM_FUNCTIONS)
        stop = threading.Event()
        honest = threading.Thread(target=_honest, args=(svc, body, SCOPE, stop, result, "honest client"))
        honest.start()
        half = b"POST /symbolicate HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "
        slow_body = (b"POST /symbolicate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50000000\r\n\r\n{\"stacktraces\": [")
        header_closed: list[float] = []
        body_closed: list[float] = []
        limit = 3 * max(header_s, body_s) + 10
        bodies = [threading.Thread(target=_slow_connection, args=(svc.port, slow_body, b" " * 16, limit,
                                                                  body_closed, result, "trickled body"))
                  for _ in range(bodies_n)]
        headers = [threading.Thread(target=_slow_connection, args=(svc.port, half, b"", limit, header_closed,
                                                                   result, "half-sent header"))
                   for _ in range(headers_n)]
        say(f"slow-clients: {bodies_n} trickled bodies, then {headers_n} half-sent headers")
        for t in bodies:
            t.start()
        time.sleep(0.5)  # the bodies hold their connections first, so the cap closes headers, not bodies
        for t in headers:
            t.start()
        for t in bodies + headers:
            t.join()
        time.sleep(1.0)
        stop.set()
        honest.join()
        health = requests.get(f"{svc.url}/healthcheck", timeout=10).status_code
    result.memory = sampler.memory
    slow_open = sum(o.get("still open at the end", 0) for o in result.requests.values())
    result.check("every slow connection was closed by the service", slow_open == 0)
    result.check(f"every half-sent header closed within {header_s:g} s + 2 s",
                 bool(header_closed) and max(header_closed) <= header_s + 2.0)
    result.check(f"every trickled body answered 408 and closed within {body_s:g} s + 2 s",
                 result.requests.get("trickled body", {}).get("answered `HTTP/1.1 408 Request Timeout`, then closed")
                 == bodies_n and max(body_closed, default=0) <= body_s + 2.0)
    honest_outcomes = result.requests.get("honest client", {})
    result.check("the honest client got no wrong answer", honest_outcomes.get("wrong answer", 0) == 0)
    result.check("the honest client got right answers", honest_outcomes.get("right answer", 0) > 0)
    result.check("memory stayed bounded", not result.memory.over_limit)
    result.check("the service is healthy at the end", health == 200)
    for what, times in (("half-sent header", header_closed), ("trickled body", body_closed)):
        if times:
            result.figures[f"seconds until closed ({what}): min / max"] = [round(min(times), 2), round(max(times), 2)]
    result.notes.append("Connections past `limits.max_connections` are closed on arrival, so while the slow ones "
                        "hold the cap an honest request can meet a closed connection ('connection error' above); "
                        "the deadlines free the cap within their time.")
    return result


def hostile_tenant(root: Path, quick: bool) -> Result:
    duration_s, hostile_clients, urls_per_request = (10.0, 20, 50) if quick else (60.0, 60, 50)
    max_jobs, max_fetches = 16, 10
    result = Result("hostile-tenant", f"scope `evil/app`: {hostile_clients} clients for {duration_s:.0f} s, each "
                    f"request naming {urls_per_request} URLs on a website that answers after 10 s; scope "
                    f"`{SCOPE}` symbolicates an uploaded debug file throughout (limits.max_concurrent_jobs = "
                    f"{max_jobs}, fetch.max_fetches_per_request = {max_fetches})")
    origins = subprocess.Popen([sys.executable, "-m", "chaos.origins", str(urls_per_request), "1", "0", "10"],
                               cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert origins.stdout is not None
        slow = json.loads(origins.stdout.readline())["slow"]
        settings = service_settings(root, limits={"max_concurrent_jobs": max_jobs},
                                    fetch={"allow_private_addresses": True, "max_fetches_per_request": max_fetches})
        svc = ServiceProcess(root, settings)
        with svc, MemorySampler(pid_of(svc), interval_s=0.2, limit_kib=RSS_LIMIT_KIB) as sampler:
            uploaded(svc, WARM_ELF)
            body = native_body(WARM_ELF, WARM_FUNCTIONS)
            hostile_body = {"stacktraces": [{"frames": [{"abs_path": f"{slow}/v{n}/app.js", "lineno": 1, "colno": 1}
                                                        for n in range(urls_per_request)]}],
                            "scraping": {"enabled": True, "allowed_origins": ["*"]}}
            stop = threading.Event()
            quota_named: list[bool] = []

            def hostile() -> None:
                with requests.Session() as session:
                    while not stop.is_set():
                        try:
                            r = session.post(f"{svc.url}/symbolicate-js", json=hostile_body,
                                             params={"scope": "evil/app", "timeout": "0"}, timeout=60)
                        except requests.RequestException as exc:
                            result.count("hostile scope", f"connection error ({type(exc).__name__})")
                            continue
                        result.count("hostile scope", f"http {r.status_code}" if r.status_code != 200
                                     else r.json().get("status", "?"))
                        if r.status_code == 503:
                            quota_named.append("max_concurrent_jobs_per_scope" in r.json().get("detail", ""))
                            time.sleep(0.2)

            threads = [threading.Thread(target=hostile) for _ in range(hostile_clients)]
            threads.append(threading.Thread(target=_honest, args=(svc, body, SCOPE, stop, result, "victim scope")))
            say(f"hostile-tenant: {hostile_clients} hostile clients for {duration_s:.0f} s")
            for t in threads:
                t.start()
            time.sleep(duration_s)
            stop.set()
            for t in threads:
                t.join()
            health = requests.get(f"{svc.url}/healthcheck", timeout=10).status_code
        result.memory = sampler.memory
    finally:
        origins.terminate()
        out, _ = origins.communicate(timeout=30)
    stats = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    victim = result.requests.get("victim scope", {})
    hostile_outcomes = result.requests.get("hostile scope", {})
    accepted = sum(n for o, n in hostile_outcomes.items() if o in ("pending", "completed"))
    slow_requests = int(stats.get("slow_requests", 0))
    result.check("the victim scope got only right answers", set(victim) == {"right answer"})
    result.check("the hostile scope's extra requests got 503 naming the per-scope share",
                 bool(quota_named) and all(quota_named))
    result.check(f"the website saw at most {max_fetches} requests per accepted hostile request",
                 slow_requests <= accepted * max_fetches)
    result.check("memory stayed bounded", not result.memory.over_limit)
    result.check("the service is healthy at the end", health == 200)
    result.figures["websites: requests received and most at once"] = stats
    result.figures["hostile requests accepted"] = accepted
    return result
