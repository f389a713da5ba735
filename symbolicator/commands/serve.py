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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "serve",
        help="run the symbolication service",
        description="Run the HTTP service (symbolication, uploads, health, metrics). Settings come from "
        "defaults, then the TOML file (--config or SYMBOLICATOR_CONFIG), then SYMBOLICATOR_* environment "
        "variables, then these flags.",
    )
    p.add_argument("--config", metavar="FILE", help="TOML settings file")
    p.add_argument("--bind", metavar="HOST:PORT", help="address to listen on (default 127.0.0.1:3021)")
    p.add_argument("--processes", type=_positive, default=1, metavar="N",
                   help="run N service processes accepting on one port (SO_REUSEPORT) and sharing the cache "
                   "(default 1)")
    p.add_argument("--child-of", type=int, metavar="PID", help=argparse.SUPPRESS)
    return p


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


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
    if args.processes > 1 and args.child_of is None:
        from symbolicator.web.processes import supervise

        if settings.port == 0:
            from symbolicator.errors import ConfigError

            raise ConfigError("--processes needs a fixed port: with port 0 each process would listen on its own")

        given = (("--config", args.config), ("--bind", args.bind))
        return supervise(settings, args.processes, [f"{flag}={value}" for flag, value in given if value])
    if args.child_of is not None:
        from symbolicator.web.processes import die_with_parent

        die_with_parent(args.child_of)

    from symbolicator.web import server
    from symbolicator.web.app import create_app

    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:  # pragma: no cover - uvloop is optional
        loop_factory = None
    storage = settings.storage
    where = f"s3://{storage.s3.bucket}/{storage.s3.prefix}" if storage.backend == "s3" else f"{storage.local_dir}/"
    sock = listen(settings.host, settings.port, reuse_port=args.child_of is not None)
    log.info("listening on http://%s (storage %s, cache %s/)", settings.bind, where, settings.cache.dir)
    import asyncio

    loop = loop_factory() if loop_factory else asyncio.new_event_loop()
    server.run(create_app(settings), sock, loop)  # web.run_app plus slow-client limits
    return 0


def listen(host: str, port: int, reuse_port: bool = False) -> socket.socket:
    """The listening socket, bound before anything says "listening": a busy port is an error
    in the user's words (exit 1), not a traceback after a false start. `reuse_port` for the
    processes of `serve --processes`, which each bind the same port (SO_REUSEPORT)."""
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
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
