"""Liveness and metrics: plain `ok`, and Prometheus' text format."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from symbolicator.web.state import METRICS

routes = web.RouteTableDef()


@routes.get("/healthcheck")
async def healthcheck(request: web.Request) -> web.Response:
    return web.Response(text="ok")


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    return web.Response(body=request.app[METRICS].render(), headers={"Content-Type": CONTENT_TYPE_LATEST})
