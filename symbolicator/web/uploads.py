"""Upload routes, wire-compatible with what sentry-cli calls (docs/uploads.md).

Handlers only translate: parse and authorise the request, call the upload
service, answer JSON. Org and project slugs come from the URL; artifact bundle
projects from the body.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from aiohttp import web

from symbolicator.errors import BadRequest, InvalidId, InvalidShape, NotFound, PayloadTooLarge, invalid_shape
from symbolicator.service.uploads import CHUNKS_PER_REQUEST, parse_dif_assemble
from symbolicator.types import Scope, check_dist, check_release
from symbolicator.web.bodies import read_json
from symbolicator.web.multipart import next_part, open_form, read_block
from symbolicator.web.state import AUTH, SETTINGS, UPLOADS

routes = web.RouteTableDef()


def url_scope(org: str, project: str | None = None) -> Scope:
    try:
        return Scope.parse(f"{org}/{project}" if project is not None else org)
    except InvalidId:
        raise NotFound(f"no such organization or project: {org}/{project or ''}") from None


def project_scope(request: web.Request, org: str, project: str) -> Scope:
    """A project named by slug, or by Sentry's numeric id through `scope_aliases`."""
    aliases = request.app[SETTINGS].scope_aliases
    if project in aliases:
        return Scope.parse(aliases[project])
    return url_scope(org, project)


@routes.get("/api/0/")
async def api_root(request: web.Request) -> web.Response:
    return web.json_response({"version": "0", "auth": {"scopes": ["project:write", "org:read"]}, "user": None})


@routes.get("/api/0/organizations/{org}/chunk-upload/")
async def chunk_options(request: web.Request) -> web.Response:
    org = request.match_info["org"]
    url_scope(org)
    request.app[AUTH].require_upload_org(request, org)
    url = str(request.url.with_query(None).with_fragment(None))
    return web.json_response(request.app[UPLOADS].options(url))


@routes.post("/api/0/organizations/{org}/chunk-upload/")
async def chunk_upload(request: web.Request) -> web.Response:
    org = request.match_info["org"]
    owner = url_scope(org)
    request.app[AUTH].require_upload_org(request, org)
    uploads = request.app[UPLOADS]
    limit = uploads.options("")["maxRequestSize"] + 64 * 1024
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request too large: {request.content_length} bytes, the limit is {limit}")
    reader = await open_form(request, "`file` or `file_gzip` parts")
    count = 0
    total = 0
    while (part := await next_part(reader)) is not None:
        if part.name not in ("file", "file_gzip"):
            continue
        count += 1
        if count > CHUNKS_PER_REQUEST:
            raise BadRequest(f"too many chunks: at most {CHUNKS_PER_REQUEST} per request")
        data = bytearray()
        while block := await read_block(part, 1 << 20):
            data += block
            total += len(block)
            if total > limit:
                raise PayloadTooLarge(f"request too large: the limit is {limit} bytes")
        await uploads.store_chunk(owner, part.filename or "", data, part.name == "file_gzip")
    return web.json_response({})


@routes.post("/api/0/projects/{org}/{project}/files/difs/assemble/")
async def difs_assemble(request: web.Request) -> web.Response:
    scope = project_scope(request, request.match_info["org"], request.match_info["project"])
    request.app[AUTH].require_upload(request, [scope])
    uploads = request.app[UPLOADS]
    files = parse_dif_assemble(await read_json(request), uploads.max_chunks)
    return web.json_response(await uploads.assemble_difs(url_scope(request.match_info["org"]), scope, files))


@routes.post("/api/0/organizations/{org}/artifactbundle/assemble/")
async def bundle_assemble(request: web.Request) -> web.Response:
    org = request.match_info["org"]
    body = await read_json(request)
    if not isinstance(body, dict) or not isinstance(body.get("checksum"), str):
        raise InvalidShape("expected {checksum, chunks, projects, version?, dist?}")
    projects = body.get("projects")
    if not isinstance(projects, list) or not projects:
        raise InvalidShape("`projects` must list at least one project")
    chunks = body.get("chunks", [])
    if not isinstance(chunks, list):
        raise InvalidShape("`chunks` must be a list of SHA-1 digests")
    scopes = list(dict.fromkeys(project_scope(request, org, str(p)) for p in projects))
    request.app[AUTH].require_upload(request, scopes)
    release, dist = body.get("version"), body.get("dist")
    if dist is not None and (not isinstance(dist, str) or release is None):
        raise InvalidShape("`dist` must be a string and needs `version`")
    with invalid_shape():
        if release is not None:
            check_release(release, "`version`")
        if dist is not None:
            check_dist(dist)
    answer = await request.app[UPLOADS].assemble_bundle(url_scope(org), scopes, body["checksum"], chunks, release, dist)
    return web.json_response(answer)


@routes.post("/api/0/projects/{org}/{project}/files/dsyms/")
async def single_upload(request: web.Request) -> web.Response:
    """One request, one file: `curl -F file=@app.debug …` for people without sentry-cli."""
    scope = project_scope(request, request.match_info["org"], request.match_info["project"])
    request.app[AUTH].require_upload(request, [scope])
    uploads = request.app[UPLOADS]
    limit = request.app[SETTINGS].limits.max_file_bytes
    reader = await open_form(request, "a `file` part")
    answers = []
    while (part := await next_part(reader)) is not None:
        if part.name != "file":
            continue
        with tempfile.NamedTemporaryFile(dir=uploads.work_dir, prefix="single-") as tmp:
            size = 0
            while block := await read_block(part, 1 << 20):
                size += len(block)
                if size > limit:
                    raise PayloadTooLarge(f"file larger than {limit} bytes")
                await asyncio.to_thread(tmp.write, block)
            tmp.flush()
            answers.append(await uploads.upload_file(scope, Path(tmp.name), Path(part.filename or "file").name))
    if not answers:
        raise BadRequest("no `file` part in the request")
    return web.json_response(answers, status=201)
