"""Misbehaving websites for the overload scenario, in their own process: slow ones and huge ones.

    python -m chaos.origins SLOW_VARIANTS HUGE_VARIANTS HUGE_BYTES DELAY_S

prints one JSON line (`{"slow": base URL, "huge": base URL}`) once both listen on
127.0.0.1, then serves until it is terminated. Both are
`tests.support.websites.Website` servers (real sockets, real HTTP):

- slow: `/v{n}/app.js` and `/v{n}/app.js.map` (n < SLOW_VARIANTS), the esbuild
  fixture's bundle and map, each answered only after DELAY_S seconds (nothing,
  not even headers, before that); the bundle's `sourceMappingURL` is relative,
  so its map is slow too.
- huge: `/v{n}/app.js` (n < HUGE_VARIANTS), HUGE_BYTES of minified-looking
  JavaScript streamed block by block, with no source map.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from aiohttp import web

from tests.support.websites import Website

REPO = Path(__file__).resolve().parent.parent
ESBUILD = REPO / "tests/fixtures/js/out/esbuild"
HUGE_LINE = b"var a=1;" * 127 + b"\n"  # 1 KiB lines: a bundle the line index has to walk


def slow_site(site: Website, variants: int, delay_s: float) -> None:
    files = {"app.js": (ESBUILD / "app.js").read_bytes(), "app.js.map": (ESBUILD / "app.js.map").read_bytes()}
    for n in range(variants):
        for name, body in files.items():
            site.add(f"/v{n}/{name}", _delayed(body, delay_s, "application/javascript"
                                              if name.endswith(".js") else "application/json"))


def _delayed(body: bytes, delay_s: float, content_type: str):  # type: ignore[no-untyped-def]
    async def handler(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(delay_s)
        return web.Response(body=body, content_type=content_type)

    return handler


def huge_site(site: Website, variants: int, size: int) -> None:
    block = HUGE_LINE * 1024

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/javascript"})
        resp.content_length = size
        await resp.prepare(request)
        sent = 0
        try:
            while sent < size:
                piece = block[: size - sent]
                await resp.write(piece)
                sent += len(piece)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass
        return resp

    for n in range(variants):
        site.add(f"/v{n}/app.js", handler)


async def serve(slow_variants: int, huge_variants: int, huge_bytes: int, delay_s: float) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with Website() as slow, Website() as huge:
        slow_site(slow, slow_variants, delay_s)
        huge_site(huge, huge_variants, huge_bytes)
        print(json.dumps({"slow": slow.base_url, "huge": huge.base_url}), flush=True)
        await stop.wait()
        print(json.dumps({"slow_requests": len(slow.requests), "slow_max_in_flight": slow.max_in_flight,
                          "huge_requests": len(huge.requests), "huge_max_in_flight": huge.max_in_flight}),
              flush=True)


def main(argv: list[str]) -> int:
    if len(argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run(serve(int(argv[0]), int(argv[1]), int(argv[2]), float(argv[3])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
