"""The client side of `symbolicator upload` (the parser is in `commands/upload.py`).

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

from symbolicator.commands.messages import json_error, os_error
from symbolicator.errors import InvalidId, UploadError, UsageError
from symbolicator.types import Scope
from symbolicator.uploader import (
    POLL_INTERVAL_S,
    Client,
    Prepared,
    build_artifact_bundle,
    bytes_to_send,
    find_files,
    pending_keys,
    prepare_bytes,
    prepare_file,
)


def run(args: argparse.Namespace) -> int:
    try:
        scope = Scope.parse(args.scope)
    except InvalidId as exc:
        raise UsageError(f"--scope: {exc}") from None
    try:
        return asyncio.run(_upload(args, *scope.value.split("/")))
    except aiohttp.ClientConnectorError as exc:
        code = exc.os_error.errno
        reason = os.strerror(code).lower() if code else str(exc.os_error).lower()
        raise UploadError(f"cannot reach the server at {args.url}: {reason}") from None
    except aiohttp.ClientError as exc:
        raise UploadError(f"talking to the server at {args.url} failed: {exc}") from None


def not_a_source_map(path: Path) -> str | None:
    """Why a `.map` file is not a source map (None when it is one): such a file is refused, not uploaded."""
    import orjson

    try:
        doc = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        return json_error(exc)
    except OSError as exc:
        return os_error(exc)
    if not isinstance(doc, dict):
        return "not a source map (a JSON document, but not an object)"
    if not isinstance(doc.get("mappings"), str) and not isinstance(doc.get("sections"), list):
        return "not a source map (JSON without \"mappings\" or \"sections\")"
    return None


def _check_maps(found: Any) -> bool:
    """Drop `.map` files that are not source maps from the JS roots, each with an ERROR line; True if any."""
    refused = False
    roots = []
    for root, files in found.js_roots:
        kept = []
        for f in files:
            why = not_a_source_map(f) if f.suffix == ".map" else None
            if why is None:
                kept.append(f)
            else:
                print(f"ERROR {f}: {why}", file=sys.stderr)
                refused = True
        if kept:
            roots.append((root, kept))
    found.js_roots = roots
    return refused


async def _upload(args: argparse.Namespace, org: str, project: str) -> int:
    found = find_files(args.paths)
    refused = _check_maps(found)
    if not found.debug_files and not found.js_roots:
        print("nothing to upload: no debug files or JavaScript files found", file=sys.stderr)
        return 1 if refused else 0
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
        failed = refused
        if difs:
            failed |= await _debug_files(client, options, org, project, difs, args)
        for bundle, count in bundles:
            failed |= await _bundle(client, options, org, project, bundle, count, args)
    return 1 if failed else 0


def _bar(total: int, args: argparse.Namespace) -> tqdm:
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
        chunks = set(answer["missingChunks"])
        with _bar(bytes_to_send([bundle], chunks, int(options["chunkSize"])), args) as bar:
            await client.upload_chunks(options, [bundle], chunks, bar.update)
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
