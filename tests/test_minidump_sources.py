"""Breakpad `.sym` files on external sources: found by debug id at Symbolicator's layouts, used
for symbols (symcache) and for `STACK CFI` (CFI cache), as Symbolicator does.

The `.sym` files are `dump_syms`'s for the fixture binaries; nothing is uploaded to the scope.
They are laid out on a real loopback HTTP server (the `native` layout's Breakpad path,
`<debug file>/<BREAKPAD_ID>/<stem>.sym`), in a folder (the same, lowercased) and in a real
SeaweedFS bucket (the `unified` layout's `<code id[:2]>/<code id[2:]>/breakpad`), each path written here from the layout's documented
rule and the `.sym` file's own MODULE / INFO CODE_ID lines, not computed by the code under test.
Truth: `minidump-stackwalk` on the same `.sym` files (`truth/*.json`, re-derived by
`tests/test_minidump.py`).
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.minidump import DUMP_SYMS, MD, X86_BINARIES, assert_like_stackwalk, needs_stackwalk, post_dump
from tests.support.native_service import start_service
from tests.support.seaweed import SeaweedServer
from tests.support.websites import Website

DUMPS = ("segv-worker", "abort-worker")


def sym_files(tmp_path: Path) -> list[tuple[Path, str, str, str]]:
    """(path, module name, Breakpad id, code id) of each `.sym` dump_syms writes for the binaries."""
    out = tmp_path / "dump_syms"
    subprocess.run([str(DUMP_SYMS), "--inlines", "-s", str(out), *map(str, X86_BINARIES)], check=True,
                   capture_output=True)
    found = []
    for sym in sorted(out.rglob("*.sym")):
        with open(sym, encoding="utf-8") as f:
            _module, _os, _arch, breakpad_id, name = f.readline().split(maxsplit=4)
            code_id = f.readline().split()[2]  # INFO CODE_ID <id>
        found.append((sym, name.strip(), breakpad_id, code_id.lower()))
    return found


def walk_with_sources(tmp_path: Path, sources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    svc = start_service(tmp_path / "svc", sources=sources, fetch={"allow_private_addresses": True})
    try:
        answers = {}
        for name in DUMPS:
            r = post_dump(svc, (MD / "dumps" / f"{name}.dmp").read_bytes(), options={"dif_candidates": True})
            assert r.status_code == 200, r.text
            answers[name] = r.json()
        return answers
    finally:
        svc.stop()


def check(answers: dict[str, dict[str, Any]], location_part: str) -> None:
    compared = 0
    for name, body in answers.items():
        modules = {Path(m["code_file"]).name: m for m in body["modules"]}
        for exe in ("crasher", "libcrashlib.so", "libc.so.6"):
            assert modules[exe]["unwind_status"] == "found", (name, exe, modules[exe].get("candidates"))
        assert modules["crasher"]["debug_status"] == "found"
        assert modules["libcrashlib.so"]["debug_status"] == "found"
        unwind = [c for c in modules["crasher"]["candidates"] if "unwind" in c]
        assert unwind and location_part in unwind[-1]["location"] and unwind[-1]["unwind"] == {"status": "ok"}
        compared += assert_like_stackwalk(name, body)
    assert compared >= 10


@needs_stackwalk
async def test_sym_files_on_an_http_source(tmp_path: Path) -> None:
    syms = sym_files(tmp_path)
    async with Website() as site:
        for path, name, breakpad_id, _code_id in syms:
            stem = name.removesuffix(".exe").removesuffix(".dll").removesuffix(".pdb")
            site.add_body(f"/symbols/{name}/{breakpad_id}/{stem}.sym", path.read_bytes())
        source = {"id": "breakpad-http", "type": "http", "url": site.url("/symbols/"), "layout": {"type": "native"}}
        answers = await asyncio.to_thread(walk_with_sources, tmp_path, [source])
        requested = set(site.requests)
    check(answers, ".sym")
    # The debug and code file paths of the native layout were asked for first (Symbolicator's order).
    assert any(p.endswith(".debug") for p in requested) and any(p.endswith(".sym") for p in requested)


@needs_stackwalk
def test_sym_files_in_a_folder_with_lowercase_paths(tmp_path: Path) -> None:
    """A filesystem source, native layout with `casing: lowercase` (Symbolicator lowercases the
    whole path, the Breakpad id included)."""
    root = tmp_path / "symbols"
    for path, name, breakpad_id, _code_id in sym_files(tmp_path):
        target = root / name.lower() / breakpad_id.lower() / f"{name.lower()}.sym"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    source = {"id": "breakpad-folder", "type": "filesystem", "path": str(root),
              "layout": {"type": "native", "casing": "lowercase"}}
    check(walk_with_sources(tmp_path, [source]), ".sym")


@needs_stackwalk
@pytest.mark.s3
def test_sym_files_on_an_s3_source(tmp_path: Path, seaweed: SeaweedServer) -> None:
    bucket = seaweed.make_bucket(f"breakpad-{uuid.uuid4().hex[:12]}")
    client = seaweed.client()
    for path, _name, _breakpad_id, code_id in sym_files(tmp_path):
        client.upload_file(str(path), bucket, f"syms/{code_id[:2]}/{code_id[2:]}/breakpad")
    source = {"id": "breakpad-s3", "type": "s3", "bucket": bucket, "prefix": "syms",
              "region": [seaweed.region, seaweed.endpoint_url], "access_key": seaweed.access_key,
              "secret_key": seaweed.secret_key, "layout": {"type": "unified"}}
    check(walk_with_sources(tmp_path, [source]), "/breakpad")


def test_breakpad_paths_are_symbolicators() -> None:
    """The `.sym` paths of each layout, as Symbolicator's `paths.rs` tests spell them for the
    same ids (`test_get_native_path`, `test_get_unified_path`); symstore-like layouts have none."""
    from symbolicator.sources.config import Layout
    from symbolicator.sources.layouts import ModuleQuery, candidate_paths
    from symbolicator.types import CodeId, DebugId

    elf = ModuleQuery("elf", DebugId.parse("e45db8df-af2d-09fd-640c-8fe377d572de"),
                       CodeId.parse("dfb85de42daffd09640c8fe377d572de3e168920"),
                       code_file="/lib/x86_64-linux-gnu/libm-2.23.so", debug_file="/lib/x86_64-linux-gnu/libm-2.23.so")
    macho = ModuleQuery("macho", DebugId.parse("67e9247c-814e-392b-a027-dbde6748fcbf"),
                         code_file="/Users/travis/build/getsentry/breakpad-tools/macos/build/./crash",
                         debug_file="crash")
    assert candidate_paths(Layout("native"), "breakpad", elf) == [
        "libm-2.23.so/E45DB8DFAF2D09FD640C8FE377D572DE0/libm-2.23.so.sym"]
    assert candidate_paths(Layout("unified"), "breakpad", elf) == ["df/b85de42daffd09640c8fe377d572de3e168920/breakpad"]
    assert candidate_paths(Layout("native"), "breakpad", macho) == ["crash/67E9247C814E392BA027DBDE6748FCBF0/crash.sym"]
    assert candidate_paths(Layout("unified"), "breakpad", macho) == ["67/e9247c814e392ba027dbde6748fcbf/breakpad"]
    for layout in ("symstore", "ssqp", "symstore_index2", "debuginfod"):
        assert candidate_paths(Layout(layout), "breakpad", elf) == []


async def test_unwind_search_passes_over_a_split_debug_file(tmp_path: Path) -> None:
    """A split debug file (`.eh_frame` NOBITS) and its stripped executable on one source: the
    symbol search takes the debug file, the unwind search the executable (Symbolicator's
    `ObjectPurpose::Unwind` accepts only files with unwind information)."""
    from symbolicator.config import FetchSettings
    from symbolicator.fetch import Fetcher
    from symbolicator.native.objects import identify
    from symbolicator.sources import ModuleQuery, parse_config_sources
    from symbolicator.sources.search import find_debug_file

    exe = MD / "out/libcrashlib.so"
    info = identify(exe)[0]
    assert info.code_id is not None
    root, code_id = tmp_path / "symbols", info.code_id.value
    (root / code_id[:2]).mkdir(parents=True)
    subprocess.run(["objcopy", "--only-keep-debug", str(exe), str(root / code_id[:2] / f"{code_id[2:]}.debug")],
                   check=True)
    subprocess.run(["strip", "--strip-debug", str(exe), "-o", str(root / code_id[:2] / code_id[2:])], check=True)
    config = parse_config_sources([{"id": "fs", "type": "filesystem", "path": str(root)}])
    module = ModuleQuery("elf", info.debug_id, info.code_id, code_file="/x/libcrashlib.so")
    fetcher = Fetcher(FetchSettings())
    try:
        for purpose, expected in (("debug", "elf_debug"), ("unwind", "elf_code")):
            dest = tmp_path / purpose
            dest.mkdir()
            found = await find_debug_file(config, module, dest, fetcher=fetcher, max_bytes=1 << 26, purpose=purpose)
            assert (found.status, found.file_type) == ("found", expected), found.candidates
    finally:
        await fetcher.close()


# ------------------------------------------------------------------------------------ rewrite_first_module

ELECTRON_RULES = [{"from": r"[^/\\]+ (?<suffix>Framework|Helper( \(.+\))?)$", "to": "Electron $suffix"},
                  {"from": r"[^/\\]+\.exe\.pdb$", "to": "electron.exe.pdb"},
                  {"from": r"[^/\\]+$", "to": "electron"}]


def test_rewrite_rules_behave_as_symbolicators() -> None:
    """Symbolicator's own cases for these rules (`interface/mod.rs`, `test_rewrite_electron`), then
    Rust's replacement syntax, the first match only, and a backtracking pattern stopped by the budget."""
    from symbolicator.errors import InvalidShape, RewriteRulesTooSlow
    from symbolicator.service.rewrite_rules import RewriteRules, apply

    rules = RewriteRules.from_json(ELECTRON_RULES)
    cases = {"My Awesome Crasher": "electron", "My Awesome Crasher Helper (Renderer)": "Electron Helper (Renderer)",
             "My Awesome Crasher Helper": "Electron Helper",
             "C:/projects/src/out/Default/myapp.exe.pdb": "C:/projects/src/out/Default/electron.exe.pdb",
             "C:\\projects\\src\\out\\Default\\myapp.exe.pdb": "C:\\projects\\src\\out\\Default\\electron.exe.pdb",
             "C:\\projects\\src\\out\\Default\\myapp-exe-pdb": "C:\\projects\\src\\out\\Default\\electron",
             "/home/************/usr/lib/slack/slack": "/home/************/usr/lib/slack/electron"}
    for name, expected in cases.items():
        assert apply(rules, name) == expected, name
    syntax = RewriteRules.from_json([{"from": r"(?<a>x)(y)?(z)", "to": "$$-${a}-$2-$3-$nope-$"}])
    assert apply(syntax, "1xz2xz") == "1$-x--z--$2xz"
    assert apply(RewriteRules.from_json([{"from": "^q", "to": "r"}]), "abc") is None
    assert apply(RewriteRules.from_json([{"from": r"^[A-Z][:]", "to": "D:"}]), "C:\\x") == "D:\\x"
    for bad in ({"from": "("}, [{"from": "("}], [{"from": "(", "to": "x"}], [{"from": "a", "to": 1}],
                [{"from": "[[:alpha:]]+", "to": "x"}]):
        with pytest.raises(InvalidShape):
            RewriteRules.from_json(bad)
    with pytest.raises(RewriteRulesTooSlow, match="longer than"):
        apply(RewriteRules.from_json([{"from": "(a+)+$", "to": "x"}]), "a" * 40 + "b", budget_s=0.2)


@needs_stackwalk
async def test_rewrite_first_module_finds_a_renamed_executables_sym_file(tmp_path: Path) -> None:
    """The executable's `.sym` sits on the source under another name (`electron-crasher`, as a
    prebuilt Electron binary's would): without `rewrite_first_module` the executable has neither
    symbols nor CFI; with the rule (applied to the module loaded lowest, the executable) both are
    found through the Breakpad path, every frame equals minidump-stackwalk's, and the answer keeps
    the dump's file name."""
    renamed = "electron-crasher"
    async with Website() as site:
        for path, name, breakpad_id, _code_id in sym_files(tmp_path):
            served = renamed if name == "crasher" else name
            site.add_body(f"/symbols/{served}/{breakpad_id}/{served}.sym", path.read_bytes())
        source = {"id": "breakpad-http", "type": "http", "url": site.url("/symbols/"), "layout": {"type": "native"}}
        rules = [{"from": r"[^/\\]+$", "to": renamed}]

        def run() -> tuple[dict[str, Any], dict[str, Any], int]:
            svc = start_service(tmp_path / "svc", sources=[source], fetch={"allow_private_addresses": True})
            try:
                data = (MD / "dumps/segv-worker.dmp").read_bytes()
                plain = post_dump(svc, data).json()
                rewritten = post_dump(svc, data, rewrite_first_module=rules, options={"dif_candidates": True}).json()
                bad = post_dump(svc, data, rewrite_first_module=[{"from": "(", "to": "x"}]).status_code
                # backtracking past the worker's time budget: the job fails with the reason
                slow = post_dump(svc, data, rewrite_first_module=[{"from": r"^([\w/]+)+X$", "to": "x"}]).json()
                assert slow["status"] == "failed" and "rewrite_first_module" in slow["message"], slow
                assert post_dump(svc, data).json()["status"] == "completed"
                return plain, rewritten, bad
            finally:
                svc.stop()

        plain, rewritten, bad = await asyncio.to_thread(run)
    assert bad == 422
    before = {Path(m["code_file"]).name: m for m in plain["modules"]}
    assert before["crasher"]["debug_status"] == "missing" and before["crasher"]["unwind_status"] == "missing"
    after = {Path(m["code_file"]).name: m for m in rewritten["modules"]}
    assert after["crasher"]["debug_status"] == "found" and after["crasher"]["unwind_status"] == "found"
    assert after["crasher"]["debug_file"] == before["crasher"]["debug_file"] != renamed
    assert any(f"/{renamed}/" in c["location"] for c in after["crasher"]["candidates"])
    assert assert_like_stackwalk("segv-worker", rewritten) >= 5
