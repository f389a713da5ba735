"""`symbolicator serve`: run the HTTP service.

With no configuration it runs the embedded default: uploads in `./uploads`,
caches in `./cache`, listening on 127.0.0.1:3021, uploads open to loopback.
The port is bound before "listening" is logged, so a busy port is a one-line
error (exit 1). `SYMBOLICATOR_URL` / `SYMBOLICATOR_TOKEN` belong to `upload`
and are ignored here (`config.CLIENT_ENV`).
"""

from __future__ import annotations

import argparse
import errno
import json
import typing

if typing.TYPE_CHECKING:
    import socket


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
    import logging

    from symbolicator.config import check_serving, describe, load_settings

    log = logging.getLogger("symbolicator")

    settings = load_settings(args.config, overrides={"bind": args.bind})
    check_serving(settings)
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log.info("settings: %s", json.dumps(describe(settings), default=str))
    settings.cache.dir.mkdir(parents=True, exist_ok=True)

    from aiohttp import web

    from symbolicator.web.app import create_app

    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional
        loop_factory = None
    storage = settings.storage
    where = f"s3://{storage.s3.bucket}/{storage.s3.prefix}" if storage.backend == "s3" else f"{storage.local_dir}/"
    sock = listen(settings.host, settings.port)
    log.info("listening on http://%s (storage %s, cache %s/)", settings.bind, where, settings.cache.dir)
    import asyncio

    loop = loop_factory() if loop_factory else asyncio.new_event_loop()
    web.run_app(create_app(settings), sock=sock, print=None, loop=loop, access_log=None, handle_signals=True)
    return 0


def listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything says "listening": a busy port is an error
    in the user's words (exit 1), not a traceback after a false start."""
    import socket

    from symbolicator.errors import ConfigError

    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"bind {host}:{port}: cannot resolve {host!r} ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(1024)
    except OSError as exc:
        sock.close()
        reason = (exc.strerror or str(exc)).lower()
        hint = " (is another symbolicator already running there? pick another with --bind)" \
            if exc.errno == errno.EADDRINUSE else ""
        raise ConfigError(f"cannot listen on {host}:{port}: {reason}{hint}") from None
    sock.setblocking(False)
    return sock
