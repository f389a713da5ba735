"""`symbolicator upload`: send debug files and JS + source maps from CI.

Speaks the chunked protocol of sentry-cli (see `symbolicator.uploader`):
only chunks the server lacks travel, so re-running a CI step is cheap and an
interrupted upload resumes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
from tqdm import tqdm

from symbolicator.types import Scope
from symbolicator.uploader import (
    POLL_INTERVAL_S,
    Client,
    Prepared,
    UploadError,
    build_artifact_bundle,
    bytes_to_send,
    find_files,
    pending_keys,
    prepare_bytes,
    prepare_file,
)


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
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
    scope = Scope.parse(args.scope)
    if "/" not in scope.value:
        raise UploadError("--scope must be ORG/PROJECT")
    if args.dist and not args.release:
        raise UploadError("--dist needs --release")
    return asyncio.run(_upload(args, *scope.value.split("/")))


async def _upload(args: argparse.Namespace, org: str, project: str) -> int:
    found = find_files(args.paths)
    if not found.debug_files and not found.js_roots:
        print("nothing to upload: no debug files or JavaScript files found", file=sys.stderr)
        return 0
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=300)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, args.url, args.token, compress=not args.no_compression)
        options = await client.options(org)
        chunk_size = int(options["chunkSize"])
        difs = [await asyncio.to_thread(prepare_file, p, chunk_size) for p in found.debug_files]
        too_big = [d for d in difs if d.size > int(options.get("maxFileSize") or 1 << 62)]
        for d in too_big:
            print(f"SKIPPED {d.name}: {d.size} bytes is more than the server accepts", file=sys.stderr)
        difs = [d for d in difs if d not in too_big]
        bundles = []
        for root, files in found.js_roots:
            data = await asyncio.to_thread(build_artifact_bundle, root, files, org, project, args.release,
                                           args.dist, args.url_prefix)
            bundles.append((prepare_bytes(data, chunk_size, f"{root} ({len(files)} files)"), len(files)))
        failed = False
        if difs:
            failed |= await _debug_files(client, options, org, project, difs, args)
        for bundle, count in bundles:
            failed |= await _bundle(client, options, org, project, bundle, count, args)
    return 1 if failed else 0


def _bar(total: int, args: argparse.Namespace) -> tqdm:  # type: ignore[type-arg]
    return tqdm(total=total, unit="B", unit_scale=True, disable=args.no_progress or None, file=sys.stderr,
                desc="uploading")


async def _debug_files(client: Client, options: dict[str, Any], org: str, project: str,
                       difs: list[Prepared], args: argparse.Namespace) -> bool:
    answers = await client.assemble_difs(org, project, difs)
    missing = {c for a in answers.values() if a.get("state") == "not_found" for c in a.get("missingChunks", [])}
    if missing:
        with _bar(bytes_to_send(difs, missing, int(options["chunkSize"])), args) as bar:
            await client.upload_chunks(options, difs, missing, bar.update)
        answers = await client.assemble_difs(org, project, difs)
    elif all(a.get("state") == "ok" for a in answers.values()):
        print("Nothing to upload, all files are on the server")
    deadline = time.monotonic() + args.wait_timeout
    while args.wait and pending_keys(answers) and time.monotonic() < deadline:
        await asyncio.sleep(POLL_INTERVAL_S)
        answers = await client.assemble_difs(org, project, [d for d in difs if d.sha1 in pending_keys(answers)]) | {
            k: v for k, v in answers.items() if k not in pending_keys(answers)}
    failed = False
    for d in difs:
        a = answers.get(d.sha1, {})
        state = a.get("state")
        if state == "ok":
            dif = a.get("dif") or {}
            print(f"OK {dif.get('debugId')} ({d.name}; {dif.get('cpuName')} {dif.get('data', {}).get('type')})")
        elif state in ("created", "assembling"):
            print(f"UPLOADED {d.name} (processing on the server)")
            failed |= args.wait
        else:
            print(f"ERROR {d.name}: {a.get('detail') or state}", file=sys.stderr)
            failed = True
    return failed


async def _bundle(client: Client, options: dict[str, Any], org: str, project: str, bundle: Prepared,
                  count: int, args: argparse.Namespace) -> bool:
    answer = await client.assemble_bundle(org, project, bundle, args.release, args.dist)
    if answer.get("state") == "not_found" and answer.get("missingChunks"):
        missing = set(answer["missingChunks"])
        with _bar(bytes_to_send([bundle], missing, int(options["chunkSize"])), args) as bar:
            await client.upload_chunks(options, [bundle], missing, bar.update)
        answer = await client.assemble_bundle(org, project, bundle, args.release, args.dist)
    deadline = time.monotonic() + args.wait_timeout
    while args.wait and answer.get("state") in ("created", "assembling") and time.monotonic() < deadline:
        await asyncio.sleep(POLL_INTERVAL_S)
        answer = await client.assemble_bundle(org, project, bundle, args.release, args.dist)
    state = answer.get("state")
    if state == "ok":
        info = answer.get("bundle") or {}
        print(f"OK artifact bundle {bundle.sha1[:12]} ({count} files, {info.get('debug_ids', '?')} debug ids)")
        return False
    if state in ("created", "assembling"):
        print(f"UPLOADED artifact bundle {bundle.sha1[:12]} ({count} files; processing on the server)")
        return bool(args.wait)
    print(f"ERROR artifact bundle {bundle.name}: {answer.get('detail') or state}", file=sys.stderr)
    return True
