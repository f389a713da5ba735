"""Liveness, readiness and metrics.

`GET /healthcheck` answers `ok` from memory: load balancers call it often, so it
touches nothing. `GET /ready` is for orchestrators and people: it checks each
dependency the service needs to answer (the upload storage, local or S3, and the
cache disk) and answers 200 with each check, or 503 (through `web/errors.py`)
naming the dependency that is down, so "healthy but useless" is visible.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from symbolicator.errors import NotReady
from symbolicator.web.state import CACHES, METRICS, SETTINGS, STORAGE

routes = web.RouteTableDef()

READY_TIMEOUT_S = 5.0
PROBE_PREFIX = "readiness/"


@routes.get("/healthcheck")
async def healthcheck(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@routes.get("/ready")
async def ready(request: web.Request) -> web.Response:
    checks = await asyncio.gather(_storage(request.app), _cache(request.app))
    answer = dict(zip(("storage", "cache"), checks, strict=False))
    down = [f"{name} {c['where']}: {c['error']}" for name, c in answer.items() if c["error"]]
    if down:
        raise NotReady("not ready: " + "; ".join(down))
    return web.json_response({"status": "ready", "checks": answer})


async def _storage(app: web.Application) -> dict[str, str | None]:
    s = app[SETTINGS].storage
    where = f"s3://{s.s3.bucket}/{s.s3.prefix}" if s.backend == "s3" else str(s.local_dir)
    # A listing, not a HEAD: a missing bucket answers a HEAD with "no such key".
    return {"where": where, "error": await _probe(lambda: next(iter(app[STORAGE].list(PROBE_PREFIX)), None))}


async def _cache(app: web.Application) -> dict[str, str | None]:
    root = app[CACHES].root
    return {"where": str(root), "error": await _probe(lambda: _writable(root))}


def _writable(folder: Path) -> None:
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".ready-"):
        pass
    if os.statvfs(folder).f_bavail == 0:
        raise OSError("the disk is full")


async def _probe(check: Callable[[], object]) -> str | None:
    """None when `check` runs in a worker thread within the timeout; else what went wrong, in words."""
    try:
        await asyncio.wait_for(asyncio.to_thread(check), READY_TIMEOUT_S)
    except TimeoutError:
        return f"no answer within {READY_TIMEOUT_S:g} s"
    except OSError as exc:
        return (exc.strerror or str(exc)).lower()
    except Exception as exc:  # noqa: BLE001 - a readiness check reports every failure, whatever its type
        return str(exc) or type(exc).__name__
    return None


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
