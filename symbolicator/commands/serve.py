"""`symbolicator serve`: run the HTTP service.

With no configuration it runs the embedded default: uploads in `./uploads`,
caches in `./cache`, listening on 127.0.0.1:3021, uploads open to loopback.
"""

from __future__ import annotations

import argparse
import json
import logging

from symbolicator.config import check_serving, describe, load_settings

log = logging.getLogger("symbolicator")


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="run the symbolication service",
        description="Run the HTTP service (symbolication, uploads, health, metrics). Settings come from "
        "defaults, then the TOML file (--config or SYMBOLICATOR_CONFIG), then SYMBOLICATOR_* environment "
        "variables, then these flags.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML settings file")
    p.add_argument("--bind", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:3021)")
    return p


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config, overrides={"bind": args.bind})
    check_serving(settings)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.info("settings: %s", json.dumps(describe(settings), default=str))
    settings.cache.dir.mkdir(parents=True, exist_ok=True)

    from symbolicator.web import server
    from symbolicator.web.app import create_app

    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional
        loop_factory = None
    storage = settings.storage
    where = f"s3://{storage.s3.bucket}/{storage.s3.prefix}" if storage.backend == "s3" else f"{storage.local_dir}/"
    log.info("listening on http://%s (storage %s, cache %s/)", settings.bind, where, settings.cache.dir)
    import asyncio

    loop = loop_factory() if loop_factory else asyncio.new_event_loop()
    server.run(create_app(settings), settings.host, settings.port, loop)  # web.run_app plus slow-client limits
    return 0
