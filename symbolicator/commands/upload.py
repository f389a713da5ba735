"""`symbolicator upload`: send debug files and JS + source maps from CI.

Speaks the chunked protocol of sentry-cli: only chunks the server lacks travel,
so re-running a CI step is cheap and an interrupted upload resumes. This module
is the parser; the client is `commands/upload_run.py`, imported when the
command runs (aiohttp alone costs a third of a second). `SYMBOLICATOR_URL` and
`SYMBOLICATOR_TOKEN` are this client's variables: `serve` ignores them
(`config.CLIENT_ENV`), so one shell can both upload and run the service.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from symbolicator.errors import UsageError


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "upload",
        help="upload debug files and JS source maps to a symbolicator server",
        description="Find debug files (ELF, Mach-O, dSYM, source bundles) and JavaScript files with their "
        "source maps under PATH… and upload them with the chunked protocol sentry-cli uses. Chunks the "
        "server already has are skipped.",
        epilog="Example: symbolicator upload --url http://127.0.0.1:3021 --token $TOKEN --scope acme/web "
        "--release 1.4.0 --wait build/",
    )
    p.add_argument("paths", nargs="+", metavar="PATH", type=Path, help="files or folders to search")
    p.add_argument("--url", default=os.environ.get("SYMBOLICATOR_URL", "http://127.0.0.1:3021"),
                   help="server URL (env SYMBOLICATOR_URL; default %(default)s)")
    p.add_argument("--token", default=os.environ.get("SYMBOLICATOR_TOKEN"),
                   help="bearer token with the upload right (env SYMBOLICATOR_TOKEN)")
    p.add_argument("--scope", required=True, metavar="ORG/PROJECT", help="where the files belong")
    p.add_argument("--release", help="release the JS files belong to (for lookups by URL)")
    p.add_argument("--dist", help="distribution within the release (needs --release)")
    p.add_argument("--url-prefix", default="~", help="prefix of JS file URLs in the bundle (default: ~)")
    p.add_argument("--wait", action="store_true", help="wait until the server has processed every file")
    p.add_argument("--wait-timeout", type=float, default=300.0, metavar="S",
                   help="how long --wait waits (default %(default)s s)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-compression", action="store_true",
                   help="send chunks uncompressed (faster on a fast local network; gzip is the default)")
    return p


def run(args: argparse.Namespace) -> int:
    if args.dist and not args.release:
        raise UsageError("--dist needs --release (a distribution belongs to a release)")
    org, _, project = args.scope.partition("/")
    if not org or not project or "/" in project:
        raise UsageError(f"--scope must be ORG/PROJECT, got {args.scope!r}")
    from symbolicator.commands.upload_run import run as run_upload

    return run_upload(args)
