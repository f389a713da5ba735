"""The client side of the chunked upload protocol, used by `symbolicator upload`.

It speaks exactly what sentry-cli speaks (one upload path on the server): ask
for the chunk options, announce files by SHA-1 and chunk list, send only the
chunks the server says are missing (gzip, several per request), then assemble
and optionally wait. A re-upload therefore sends nothing the server already has,
and an interrupted upload resumes where it stopped.

JS files and their maps are packed into an artifact bundle the way sentry-cli
packs them (`SYSB` + ZIP, `~/relative/path` URLs, `debug-id` and `sourcemap`
headers, fixed timestamps so the same files give the same bundle).
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import re
import struct
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from symbolicator.artifacts.bundle_archive import MAGIC
from symbolicator.errors import UploadError
from symbolicator.native.wasm.module import WASM_MAGIC
from symbolicator.proguard.mapping import looks_like_mapping

JS_EXTENSIONS = (".js", ".mjs", ".cjs", ".map", ".jsbundle", ".bundle")
_DEBUG_ID_COMMENT = re.compile(rb"//# debugId=([0-9a-fA-F-]{32,40})\s*$", re.M)
_SOURCEMAP_COMMENT = re.compile(rb"//[#@] sourceMappingURL=(\S+)\s*$", re.M)
_OBJECT_MAGICS = (b"\x7fELF", b"\xfe\xed\xfa\xce", b"\xfe\xed\xfa\xcf", b"\xce\xfa\xed\xfe",
                  b"\xcf\xfa\xed\xfe", b"\xca\xfe\xba\xbe", b"\xca\xfe\xba\xbf", MAGIC, b"MODU", WASM_MAGIC)
PROGUARD_NAME = "mapping.txt"  # the name Android builds give a ProGuard / R8 mapping
POLL_INTERVAL_S = 1.0


@dataclass
class Prepared:
    """A file ready to announce: its SHA-1, its chunk SHA-1s, where its bytes are."""

    name: str
    sha1: str
    chunks: list[str]
    size: int
    path: Path | None = None
    data: bytes | None = None

    def chunk_len(self, index: int, chunk_size: int) -> int:
        """Bytes in chunk `index`: `chunk_size`, less for the last."""
        return max(0, min(chunk_size, self.size - index * chunk_size))

    def read_chunk(self, index: int, chunk_size: int) -> bytes:
        if self.data is not None:
            return self.data[index * chunk_size:(index + 1) * chunk_size]
        assert self.path is not None
        with open(self.path, "rb") as f:
            f.seek(index * chunk_size)
            return f.read(chunk_size)


def prepare_file(path: Path, chunk_size: int, name: str | None = None) -> Prepared:
    whole = hashlib.sha1()
    chunks = []
    size = 0
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            whole.update(block)
            chunks.append(hashlib.sha1(block).hexdigest())
            size += len(block)
    return Prepared(name or path.name, whole.hexdigest(), chunks, size, path=path)


def prepare_bytes(data: bytes, chunk_size: int, name: str) -> Prepared:
    chunks = [hashlib.sha1(data[i:i + chunk_size]).hexdigest() for i in range(0, len(data), chunk_size)]
    return Prepared(name, hashlib.sha1(data).hexdigest(), chunks, len(data), data=data)


@dataclass
class Found:
    debug_files: list[Path] = field(default_factory=list)
    js_roots: list[tuple[Path, list[Path]]] = field(default_factory=list)


def is_debug_file(path: Path, mappings: bool = False) -> bool:
    """By magic; with `mappings`, a ProGuard mapping's first line counts too (it has no magic)."""
    try:
        with open(path, "rb") as f:
            head = f.read(32)
    except OSError:
        return False
    return head[:4] in _OBJECT_MAGICS or head[:2] == b"MZ" or head[:4] == b"Micr" or (  # PE, MSF 7 PDB
        mappings and looks_like_mapping(head))


def find_files(paths: Iterable[Path]) -> Found:
    """Debug files by magic; JS and maps by extension, grouped by the folder they were named from."""
    found = Found()
    for root in paths:
        if root.is_file():
            if root.suffix in JS_EXTENSIONS:
                # Files named from one folder go up together, so a bundle and its map meet.
                same = next((files for folder, files in found.js_roots if folder == root.parent), None)
                if same is None:
                    found.js_roots.append((root.parent, [root]))
                elif root not in same:
                    same.append(root)
            elif is_debug_file(root, mappings=True):
                found.debug_files.append(root)
            else:
                raise UploadError(f"{root}: neither a debug file nor a JavaScript file or source map")
            continue
        if not root.is_dir():
            raise UploadError(f"{root}: no such file or directory")
        js: list[Path] = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if d not in ("node_modules", ".git"))
            for fn in sorted(filenames):
                p = Path(dirpath) / fn
                if p.suffix in JS_EXTENSIONS:
                    js.append(p)
                elif p.is_file() and not p.is_symlink() and is_debug_file(p, mappings=fn == PROGUARD_NAME):
                    found.debug_files.append(p)
        if js:
            found.js_roots.append((root, js))
    return found


def _js_headers(path: Path, data: bytes, beside: set[Path] | None = None) -> dict[str, str]:
    """The headers of an artifact-bundle entry: its debug id and, for a minified file, its map.

    A minified file without a `sourceMappingURL` comment (Hermes bytecode, a bundle built without
    `--source-map-url`) takes `<name>.map` when that file goes up with it, as sentry-cli guesses
    the reference and as `sentry-cli react-native gradle --bundle … --sourcemap …` declares it.
    """
    headers: dict[str, str] = {}
    if path.suffix == ".map":
        try:
            doc = json.loads(data)
        except ValueError:
            return headers
        debug_id = doc.get("debugId") or doc.get("debug_id") if isinstance(doc, dict) else None
        if isinstance(debug_id, str):
            headers["debug-id"] = debug_id.lower()
        return headers
    if m := _DEBUG_ID_COMMENT.findall(data[-4096:]):
        headers["debug-id"] = m[-1].decode().lower()
    if m := _SOURCEMAP_COMMENT.findall(data[-65536:]):
        url = m[-1].decode()
        if not url.startswith("data:"):
            headers["sourcemap"] = url
    elif beside is not None and path.with_name(path.name + ".map") in beside:
        headers["sourcemap"] = path.name + ".map"
    return headers


def build_artifact_bundle(root: Path, files: list[Path], org: str, project: str, release: str | None,
                          dist: str | None, url_prefix: str = "~") -> bytes:
    """An artifact bundle of `files`, with URLs relative to `root` (`~/static/app.js`)."""
    manifest: dict[str, Any] = {"files": {}, "org": org, "project": project}
    if release:
        manifest["release"] = release
    if dist:
        manifest["dist"] = dist
    buf = io.BytesIO()
    beside = set(files)
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            data = path.read_bytes()
            rel = path.relative_to(root).as_posix()
            member = f"files/_/_/{rel}"
            entry = {"type": "source_map" if path.suffix == ".map" else "minified_source",
                     "url": f"{url_prefix.rstrip('/')}/{rel}", "headers": _js_headers(path, data, beside)}
            manifest["files"][member] = entry
            zf.writestr(zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0)), data)
        _propagate_debug_ids(manifest["files"])
        zf.writestr(zipfile.ZipInfo("manifest.json", date_time=(1980, 1, 1, 0, 0, 0)),
                    json.dumps(manifest, sort_keys=True))
    return MAGIC + struct.pack("<I", 2) + buf.getvalue()


def _propagate_debug_ids(files: dict[str, dict[str, Any]]) -> None:
    """A map without its own debug id takes the id of the minified file that points at it."""
    by_url = {e["url"]: e for e in files.values()}
    for entry in files.values():
        sm, did = entry["headers"].get("sourcemap"), entry["headers"].get("debug-id")
        if entry["type"] == "minified_source" and sm and did:
            base = entry["url"].rsplit("/", 1)[0]
            target = by_url.get(f"{base}/{sm}")
            if target is not None:
                target["headers"].setdefault("debug-id", did)


Progress = Callable[[int], None]


def chunks_to_send(files: list[Prepared], missing: set[str]) -> list[tuple[Prepared, int]]:
    """(file, chunk index) of each missing chunk, each chunk once, in file order: what `upload_chunks` sends."""
    todo: list[tuple[Prepared, int]] = []
    seen: set[str] = set()
    for f in files:
        for i, c in enumerate(f.chunks):
            if c in missing and c not in seen:
                seen.add(c)
                todo.append((f, i))
    return todo


def bytes_to_send(files: list[Prepared], missing: set[str], chunk_size: int) -> int:
    """The uncompressed bytes `upload_chunks` will report to its progress callback: a progress bar's total."""
    return sum(f.chunk_len(i, chunk_size) for f, i in chunks_to_send(files, missing))


class Client:
    """One server, one token; every call raises UploadError with the server's `detail`.

    `compress=False` sends chunks as plain `file` parts: on a fast local network gzip
    costs both ends more CPU than it saves in transfer.
    """

    def __init__(self, session: aiohttp.ClientSession, url: str, token: str | None, compress: bool = True) -> None:
        self.session = session
        self.compress = compress
        self.base = url.rstrip("/")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def _json(self, method: str, path_or_url: str, **kw: Any) -> Any:
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        async with self.session.request(method, url, headers=self.headers, **kw) as resp:
            body = await resp.read()
            if resp.status >= 400:
                try:
                    detail = json.loads(body).get("detail")
                except (ValueError, AttributeError):
                    detail = body[:200].decode(errors="replace")
                raise UploadError(f"{method} {url}: HTTP {resp.status}: {detail}")
            try:
                return json.loads(body) if body else {}
            except ValueError as exc:
                raise UploadError(f"{method} {url}: the answer is not JSON") from exc

    async def options(self, org: str) -> dict[str, Any]:
        return await self._json("GET", f"/api/0/organizations/{org}/chunk-upload/")  # type: ignore[no-any-return]

    async def upload_chunks(self, options: dict[str, Any], files: list[Prepared], missing: set[str],
                            progress: Progress) -> None:
        size = int(options["chunkSize"])
        todo = chunks_to_send(files, missing)
        per_request = max(1, int(options.get("chunksPerRequest", 64)))
        max_bytes = int(options.get("maxRequestSize", 32 << 20))
        batches: list[list[tuple[Prepared, int]]] = []
        batch: list[tuple[Prepared, int]] = []
        batch_bytes = 0
        for item in todo:
            if batch and (len(batch) >= per_request or batch_bytes + size > max_bytes):
                batches.append(batch)
                batch, batch_bytes = [], 0
            batch.append(item)
            batch_bytes += size
        if batch:
            batches.append(batch)
        limit = asyncio.Semaphore(max(1, int(options.get("concurrency", 4))))
        gz = self.compress and "gzip" in (options.get("compression") or [])

        async def send(batch: list[tuple[Prepared, int]]) -> None:
            async with limit:
                raw = await asyncio.to_thread(lambda: [f.read_chunk(i, size) for f, i in batch])
                parts = await asyncio.to_thread(lambda: [gzip.compress(r, 1) if gz else r for r in raw])
                form = aiohttp.FormData()
                for (f, i), body in zip(batch, parts, strict=False):
                    # a file object, not bytes: aiohttp writes a large bytes part in one go on the loop
                    form.add_field("file_gzip" if gz else "file", io.BytesIO(body), filename=f.chunks[i],
                                   content_type="application/octet-stream")
                await self._json("POST", options["url"], data=form)
                progress(sum(len(r) for r in raw))

        await asyncio.gather(*(send(b) for b in batches))

    async def assemble_difs(self, org: str, project: str, files: list[Prepared]) -> dict[str, Any]:
        body = {f.sha1: {"name": f.name, "chunks": f.chunks} for f in files}
        return await self._json(  # type: ignore[no-any-return]
            "POST", f"/api/0/projects/{org}/{project}/files/difs/assemble/", json=body)

    async def assemble_bundle(self, org: str, project: str, bundle: Prepared, release: str | None,
                              dist: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"checksum": bundle.sha1, "chunks": bundle.chunks, "projects": [project]}
        if release:
            body["version"] = release
        if dist:
            body["dist"] = dist
        return await self._json(  # type: ignore[no-any-return]
            "POST", f"/api/0/organizations/{org}/artifactbundle/assemble/", json=body)


PENDING = ("created", "assembling")


def pending_keys(answers: dict[str, Any]) -> list[str]:
    return [k for k, a in answers.items() if a.get("state") in PENDING]

