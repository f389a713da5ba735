"""Finding debug files on real sources: a folder, an aiohttp server on loopback, SeaweedFS.

Files are the committed toolchain fixtures; their ids come from `fixtures.json` (readelf /
llvm-dwarfdump), and every path a source is laid out with is written in the test from the
documented rule (reference §2.3), not computed by `symbolicator.sources.layouts`.
"""

from __future__ import annotations

import asyncio
import collections
import json
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from symbolicator.config import FetchSettings
from symbolicator.fetch import Fetcher
from symbolicator.native.objects import identify
from symbolicator.sources import ModuleQuery, parse_config_sources, plan_sources
from symbolicator.sources.search import SourceLookupResult, find_debug_file
from symbolicator.types import Arch, CodeId, DebugId, ObjectKind
from tests.support.seaweed import SeaweedServer

NATIVE = Path(__file__).parent / "fixtures" / "native"
OUT = NATIVE / "out"
FIXTURES = {f["path"]: f for f in json.loads((NATIVE / "fixtures.json").read_text())["fixtures"]}

SPLIT_EXE = OUT / "elf/split/cpp_gcc_split"
SPLIT_DEBUG = OUT / "elf/split/cpp_gcc_split.debug"
OTHER_ELF = OUT / "elf/c_gcc_O2_dwarf5"
BUILD_ID = FIXTURES["out/elf/split/cpp_gcc_split.debug"]["objects"][0]["code_id"]
assert FIXTURES["out/elf/split/cpp_gcc_split"]["objects"][0]["code_id"] == BUILD_ID

DSYM_ARM64 = OUT / "macho/app_arm64.dSYM/Contents/Resources/DWARF/app_arm64"
ARM64_UUID = FIXTURES["out/macho/app_arm64.dSYM/Contents/Resources/DWARF/app_arm64"]["objects"][0]["uuid"]
FAT_DSYM = OUT / "macho/app_fat.dSYM/Contents/Resources/DWARF/app_fat"
FAT_X86 = next(o for o in FIXTURES["out/macho/app_fat.dSYM/Contents/Resources/DWARF/app_fat"]["objects"]
               if o["arch"] == "x86_64")

MAX = 64 << 20


def elf_module(build_id: str = BUILD_ID, **kw: Any) -> ModuleQuery:
    """An ELF module as a crash reports it: code id = build id, debug id derived from it."""
    return ModuleQuery("elf", DebugId.from_elf_build_id(bytes.fromhex(build_id)), CodeId.parse(build_id),
                        Arch.X86_64, kw.pop("code_file", "/opt/app/cpp_gcc_split"), kw.pop("debug_file", None), **kw)


def macho_module(uuid_text: str = ARM64_UUID, arch: Arch = Arch.ARM64) -> ModuleQuery:
    return ModuleQuery("macho", DebugId.parse(uuid_text), CodeId.parse(uuid_text), arch, "/private/var/app/App")


def put(root: Path, rel: str, src: Path | bytes) -> None:
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(src, bytes):
        target.write_bytes(src)
    else:
        shutil.copyfile(src, target)


def sources(*raws: dict[str, Any]) -> Any:
    return parse_config_sources(list(raws))


def statuses(result: SourceLookupResult) -> list[tuple[str, str]]:
    return [(c["location"].rsplit("/", 1)[-1], c["download"]["status"]) for c in result.candidates]


@pytest.fixture
async def fetcher() -> AsyncIterator[Fetcher]:
    f = Fetcher(FetchSettings(), allow_private_addresses=True)
    yield f
    await f.close()


@pytest.fixture
def dest(tmp_path: Path) -> Path:
    d = tmp_path / "downloads"
    d.mkdir()
    return d


async def test_filesystem_native_layout_finds_the_split_debug_file(tmp_path: Path, dest: Path,
                                                                   fetcher: Fetcher) -> None:
    root = tmp_path / "symbols"
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}.debug", SPLIT_DEBUG)
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}", SPLIT_EXE)
    result = await find_debug_file(sources({"id": "disk", "type": "filesystem", "path": str(root)}),
                                   elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert result.status == "found" and result.file_type == "elf_debug" and result.source_id == "disk"
    assert result.path is not None and result.path.parent == dest
    assert result.path.read_bytes() == SPLIT_DEBUG.read_bytes()
    assert result.object_info is not None and result.object_info.object_kind is ObjectKind.DEBUGINFO
    assert result.candidates == [{
        "source": "disk", "location": (root / f"{BUILD_ID[:2]}/{BUILD_ID[2:]}.debug").as_uri(),
        "download": {"status": "ok", "features": {"has_debug_info": True, "has_unwind_info": False,
                                                  "has_symbols": True, "has_sources": False}},
    }]
    assert list(dest.iterdir()) == [result.path]


async def test_debug_file_on_a_later_source_beats_a_code_file_on_an_earlier_one(tmp_path: Path, dest: Path,
                                                                                fetcher: Fetcher) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    put(first, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}", SPLIT_EXE)
    put(second, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}/debuginfo", SPLIT_DEBUG)
    result = await find_debug_file(
        sources({"id": "a", "type": "filesystem", "path": str(first)},
                {"id": "b", "type": "filesystem", "path": str(second), "layout": {"type": "unified"}}),
        elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.source_id, result.file_type) == ("found", "b", "elf_debug")
    assert result.path is not None and result.path.read_bytes() == SPLIT_DEBUG.read_bytes()
    assert [(c["source"], c["download"]["status"]) for c in result.candidates] == [
        ("a", "notfound"), ("a", "ok"), ("b", "ok")]
    assert result.candidates[1]["download"]["features"]["has_debug_info"] is False
    assert list(dest.iterdir()) == [result.path]


async def test_code_file_alone_is_found_without_debug_info(tmp_path: Path, dest: Path, fetcher: Fetcher) -> None:
    root = tmp_path / "symbols"
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}/executable", SPLIT_EXE)
    result = await find_debug_file(
        sources({"id": "u", "type": "filesystem", "path": str(root), "layout": {"type": "unified"}}),
        elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.file_type) == ("found", "elf_code")
    # Without debug info in the code file, the module's Breakpad `.sym` is looked for last.
    assert statuses(result) == [("debuginfo", "notfound"), ("executable", "ok"), ("breakpad", "notfound")]


async def test_wrong_file_at_the_right_path_is_malformed(tmp_path: Path, dest: Path, fetcher: Fetcher) -> None:
    root = tmp_path / "symbols"
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}.debug", OTHER_ELF)
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}", b"<html>not a binary</html>")
    result = await find_debug_file(sources({"id": "disk", "type": "filesystem", "path": str(root)}),
                                   elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.path) == ("malformed", None)
    assert [c["download"]["status"] for c in result.candidates] == ["malformed", "malformed"]
    other_id = FIXTURES["out/elf/c_gcc_O2_dwarf5"]["objects"][0]["code_id"]
    assert other_id in result.candidates[0]["download"]["details"]
    assert "not a debug file" in result.candidates[1]["download"]["details"]
    assert list(dest.iterdir()) == []


async def test_missing_everywhere_is_missing(tmp_path: Path, dest: Path, fetcher: Fetcher) -> None:
    (tmp_path / "empty").mkdir()
    result = await find_debug_file(sources({"id": "disk", "type": "filesystem", "path": str(tmp_path / "empty")}),
                                   elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.path) == ("missing", None)
    assert statuses(result) == [(f"{BUILD_ID[2:]}.debug", "notfound"), (BUILD_ID[2:], "notfound")]


async def test_filters_skip_file_types_and_unmatched_paths(tmp_path: Path, dest: Path, fetcher: Fetcher) -> None:
    root = tmp_path / "symbols"
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}.debug", SPLIT_DEBUG)
    put(root, f"{BUILD_ID[:2]}/{BUILD_ID[2:]}", SPLIT_EXE)
    code_only = sources({"id": "code", "type": "filesystem", "path": str(root), "filters": {"filetypes": ["elf_code"]}})
    result = await find_debug_file(code_only, elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.file_type) == ("found", "elf_code")
    assert statuses(result) == [(BUILD_ID[2:], "ok")]

    libs = {"id": "libs", "type": "filesystem", "path": str(root), "filters": {"path_patterns": ["/usr/LIB/*"]}}
    skipped = await find_debug_file(sources(libs), elf_module(code_file="/opt/app/cpp_gcc_split"), dest,
                                    fetcher=fetcher, max_bytes=MAX)
    assert (skipped.status, skipped.candidates) == ("missing", [])
    for name in ("/usr/lib/cpp_gcc_split", "\\USR\\lib\\cpp_gcc_split"):
        matched = await find_debug_file(sources(libs), elf_module(code_file=name), dest, fetcher=fetcher,
                                        max_bytes=MAX)
        assert (matched.status, matched.file_type) == ("found", "elf_debug")


def lldb_path(uuid_text: str) -> str:
    h = uuid_text.replace("-", "").upper()
    return f"{h[0:4]}/{h[4:8]}/{h[8:12]}/{h[12:16]}/{h[16:20]}/{h[20:]}"


async def test_dsym_through_the_lldb_uuid_layout(tmp_path: Path, dest: Path, fetcher: Fetcher) -> None:
    root = tmp_path / "symbols"
    put(root, lldb_path(ARM64_UUID), DSYM_ARM64)
    result = await find_debug_file(sources({"id": "lldb", "type": "filesystem", "path": str(root)}),
                                   macho_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.file_type) == ("found", "mach_debug")
    assert result.object_info is not None and str(result.object_info.debug_id) == ARM64_UUID.lower()
    assert result.object_info.arch is Arch.ARM64


async def test_lldb_uuid_link_to_a_dsym_bundle_is_followed_only_inside_the_root(tmp_path: Path, dest: Path,
                                                                                  fetcher: Fetcher) -> None:
    root = tmp_path / "symbols"
    shutil.copytree(OUT / "macho/app_arm64.dSYM", root / "bundles/app_arm64.dSYM")
    link = root / lldb_path(ARM64_UUID)
    link.parent.mkdir(parents=True)
    link.symlink_to(root / "bundles/app_arm64.dSYM")
    inside = await find_debug_file(sources({"id": "lldb", "type": "filesystem", "path": str(root)}),
                                   macho_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (inside.status, inside.file_type) == ("found", "mach_debug")

    outside = tmp_path / "elsewhere"
    shutil.move(root / "bundles", outside)
    link.unlink()
    link.symlink_to(outside / "app_arm64.dSYM")
    result = await find_debug_file(sources({"id": "lldb", "type": "filesystem", "path": str(root)}),
                                   macho_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert result.path is None and result.candidates[0]["download"]["status"] == "noperm"
    assert "outside" in result.candidates[0]["download"]["details"]


async def test_fat_dsym_through_symstore_picks_the_requested_slice(tmp_path: Path, dest: Path,
                                                                   fetcher: Fetcher) -> None:
    root = tmp_path / "symstore"
    uuid_hex = FAT_X86["uuid"].replace("-", "").lower()
    put(root, f"_.dwarf/mach-uuid-sym-{uuid_hex}/_.dwarf", FAT_DSYM)
    result = await find_debug_file(
        sources({"id": "ss", "type": "filesystem", "path": str(root), "layout": {"type": "symstore"}}),
        macho_module(FAT_X86["uuid"], Arch.X86_64), dest, fetcher=fetcher, max_bytes=MAX)
    info = result.object_info
    assert result.status == "found" and info is not None
    assert (info.fat, info.arch, info.offset, info.size) == (True, Arch.X86_64, FAT_X86["offset"], FAT_X86["size"])

    wrong_arch = await find_debug_file(
        sources({"id": "ss", "type": "filesystem", "path": str(root), "layout": {"type": "symstore"}}),
        macho_module(FAT_X86["uuid"], Arch.ARM64), dest, fetcher=fetcher, max_bytes=MAX)
    assert wrong_arch.status == "malformed"


async def test_traversal_in_file_names_stays_inside_the_root(tmp_path: Path, dest: Path, fetcher: Fetcher) -> None:
    root = tmp_path / "symstore"
    root.mkdir()
    secret = tmp_path / "secret"
    put(secret, f"elf-buildid-{BUILD_ID}/secret", SPLIT_DEBUG)
    raw = {"id": "ss", "type": "filesystem", "path": str(root), "layout": {"type": "symstore"},
           "filters": {"filetypes": ["elf_code"]}}
    for name in ("..", "../..", "x/..", "..\\..", "/"):
        result = await find_debug_file(sources(raw), elf_module(code_file=name), dest, fetcher=fetcher, max_bytes=MAX)
        assert (result.status, result.candidates[0]["location"]) == ("missing", "No object files listed on this source")
    result = await find_debug_file(sources(raw), elf_module(code_file="../../secret"), dest, fetcher=fetcher,
                                   max_bytes=MAX)
    assert result.status == "missing"
    assert result.candidates[0]["location"] == (root / f"secret/elf-buildid-{BUILD_ID}/secret").as_uri()


class SymbolServer:
    """A debuginfod-like HTTP server on 127.0.0.1 that counts requests per path."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.forbidden: set[str] = set()
        self.hits: collections.Counter[str] = collections.Counter()
        self.auth: list[str | None] = []
        self.slow: set[str] = set()
        self.release = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] += 1
        self.auth.append(request.headers.get("Authorization"))
        if request.path in self.slow:
            await asyncio.wait_for(self.release.wait(), 5)
        if request.path in self.forbidden:
            return web.Response(status=403)
        if request.path not in self.files:
            return web.Response(status=404)
        return web.Response(body=self.files[request.path])


@pytest.fixture
async def server() -> AsyncIterator[SymbolServer]:
    s = SymbolServer()
    app = web.Application()
    app.router.add_get("/{tail:.*}", s.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    s.url = f"http://127.0.0.1:{runner.addresses[0][1]}/buildid/"
    yield s
    s.release.set()
    await runner.cleanup()


async def test_http_debuginfod_fetches_debuginfo_once(server: SymbolServer, dest: Path, fetcher: Fetcher) -> None:
    server.files[f"/buildid/{BUILD_ID}/debuginfo"] = SPLIT_DEBUG.read_bytes()
    server.files[f"/buildid/{BUILD_ID}/executable"] = SPLIT_EXE.read_bytes()
    config = sources({"id": "dbg", "type": "http", "url": server.url, "layout": {"type": "debuginfod"},
                      "headers": {"Authorization": "Bearer sekrit"}})
    result = await find_debug_file(config, elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.file_type) == ("found", "elf_debug")
    assert result.location == f"{server.url}{BUILD_ID}/debuginfo"
    assert server.hits == {f"/buildid/{BUILD_ID}/debuginfo": 1}
    assert server.auth == ["Bearer sekrit"]
    assert result.path is not None and identify(result.path)[0].object_kind is ObjectKind.DEBUGINFO


async def test_http_falls_back_to_executable_and_reports_403_as_noperm(server: SymbolServer, dest: Path,
                                                                       fetcher: Fetcher) -> None:
    server.files[f"/buildid/{BUILD_ID}/executable"] = SPLIT_EXE.read_bytes()
    config = sources({"id": "dbg", "type": "http", "url": server.url, "layout": {"type": "debuginfod"}})
    result = await find_debug_file(config, elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (result.status, result.file_type) == ("found", "elf_code")
    assert statuses(result) == [("debuginfo", "notfound"), ("executable", "ok")]

    server.forbidden = {f"/buildid/{BUILD_ID}/debuginfo", f"/buildid/{BUILD_ID}/executable"}
    denied = await find_debug_file(config, elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (denied.status, statuses(denied)) == ("fetching_failed", [("debuginfo", "noperm"), ("executable", "noperm")])
    assert "permission_denied" in denied.candidates[0]["download"]["details"]


async def test_request_sources_are_used_only_when_allowed(server: SymbolServer, dest: Path, fetcher: Fetcher) -> None:
    server.files[f"/buildid/{BUILD_ID}/debuginfo"] = SPLIT_DEBUG.read_bytes()
    raw = [{"id": "sentry:project", "type": "sentry", "url": "http://sentry.invalid/", "token": "t"},
           {"id": "theirs", "type": "http", "url": server.url, "layout": {"type": "debuginfod"}},
           {"id": "disk", "type": "filesystem", "path": str(OUT), "layout": {"type": "native"}}]
    refused = await find_debug_file(plan_sources((), raw, allow_request_sources=False), elf_module(), dest,
                                    fetcher=fetcher, max_bytes=MAX)
    assert refused.status == "missing" and not server.hits
    assert [(c["source"], c["download"]["status"]) for c in refused.candidates] == [
        ("sentry:project", "notfound"), ("theirs", "notfound"), ("disk", "notfound")]
    assert "allow_request_sources" in refused.candidates[1]["location"]

    allowed = await find_debug_file(plan_sources((), raw, allow_request_sources=True), elf_module(), dest,
                                    fetcher=fetcher, max_bytes=MAX)
    assert (allowed.status, allowed.source_id) == ("found", "theirs")
    disk = next(c for c in allowed.candidates if c["source"] == "disk")
    assert "server's config" in disk["location"]


async def test_request_http_source_on_loopback_is_refused_by_the_fetch_policy(server: SymbolServer, dest: Path) -> None:
    server.files[f"/buildid/{BUILD_ID}/debuginfo"] = SPLIT_DEBUG.read_bytes()
    strict = Fetcher(FetchSettings())
    try:
        plan = plan_sources((), [{"id": "theirs", "type": "http", "url": server.url, "layout": {"type": "debuginfod"}}],
                            allow_request_sources=True)
        result = await find_debug_file(plan, elf_module(), dest, fetcher=strict, max_bytes=MAX)
    finally:
        await strict.close()
    assert result.status == "fetching_failed" and not server.hits
    assert all("invalid_host" in c["download"]["details"] for c in result.candidates)


async def test_slow_and_oversized_downloads_are_errors(server: SymbolServer, dest: Path) -> None:
    server.slow.add(f"/buildid/{BUILD_ID}/debuginfo")
    server.files[f"/buildid/{BUILD_ID}/executable"] = SPLIT_EXE.read_bytes()
    impatient = Fetcher(FetchSettings(read_timeout_s=0.2, total_timeout_s=0.5), allow_private_addresses=True)
    config = sources({"id": "dbg", "type": "http", "url": server.url, "layout": {"type": "debuginfod"}})
    try:
        result = await find_debug_file(config, elf_module(), dest, fetcher=impatient, max_bytes=1000)
    finally:
        await impatient.close()
    assert (result.status, statuses(result)) == ("timeout", [("debuginfo", "error"), ("executable", "error")])
    assert result.candidates[0]["download"]["details"].startswith("timeout")
    assert result.candidates[1]["download"]["details"].startswith("too_large")
    assert list(dest.iterdir()) == []


async def test_request_s3_endpoint_on_a_private_address_is_refused(dest: Path) -> None:
    strict = Fetcher(FetchSettings())
    raw = [{"id": "theirs", "type": "s3", "bucket": "b", "region": ["us-east-1", "http://10.1.2.3:9000"],
            "access_key": "k", "secret_key": "s", "layout": {"type": "unified"}}]
    try:
        result = await find_debug_file(plan_sources((), raw, allow_request_sources=True), elf_module(), dest,
                                       fetcher=strict, max_bytes=MAX)
    finally:
        await strict.close()
    assert result.status == "fetching_failed"
    assert all(c["download"]["status"] == "error" and "invalid_host" in c["download"]["details"]
               for c in result.candidates)


@pytest.mark.s3
async def test_s3_unified_layout_on_seaweed(seaweed: SeaweedServer, dest: Path, fetcher: Fetcher) -> None:
    bucket = seaweed.make_bucket(f"sources-{uuid.uuid4().hex[:12]}")
    client = seaweed.client()
    client.upload_file(str(SPLIT_EXE), bucket, f"symbols/{BUILD_ID[:2]}/{BUILD_ID[2:]}/executable")
    client.upload_file(str(DSYM_ARM64), bucket, f"symbols/{ARM64_UUID.replace('-', '').lower()[:2]}/"
                                                f"{ARM64_UUID.replace('-', '').lower()[2:]}/debuginfo")
    config = sources({"id": "bucket", "type": "s3", "bucket": bucket, "prefix": "symbols",
                      "region": [seaweed.region, seaweed.endpoint_url], "access_key": seaweed.access_key,
                      "secret_key": seaweed.secret_key, "layout": {"type": "unified"}})
    elf = await find_debug_file(config, elf_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (elf.status, elf.file_type) == ("found", "elf_code")
    assert statuses(elf) == [("debuginfo", "notfound"), ("executable", "ok"), ("breakpad", "notfound")]
    assert elf.candidates[1]["location"] == f"s3://{bucket}/symbols/{BUILD_ID[:2]}/{BUILD_ID[2:]}/executable"
    macho = await find_debug_file(config, macho_module(), dest, fetcher=fetcher, max_bytes=MAX)
    assert (macho.status, macho.file_type) == ("found", "mach_debug")
    assert macho.path is not None and macho.path.read_bytes() == DSYM_ARM64.read_bytes()
