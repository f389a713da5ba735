"""Issue 11 item 5: the offline commands keep converted files between runs (`--cache-dir`, `--no-cache`).

Each run is a real `python -X importtime -m symbolicator …` subprocess: a second run on
the same file must not convert again, which shows as the converter never being
imported (`symbolicator.native.symcache_build` for debug files, `tree_sitter` for the
function-name pass of source maps), and must answer exactly what the first run did,
which matched llvm-symbolizer / @jridgewell/trace-mapping (recorded expectations).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.test_sourcemaps import _expected
from tests.test_symcache_resolve_cli import OUT as NATIVE_OUT
from tests.test_symcache_resolve_cli import _inlined_address

JS_OUT = Path(__file__).parent / "fixtures" / "js" / "out"
CONVERTS_NATIVE = "symbolicator.native.symcache_build"
CONVERTS_JS = "tree_sitter"


def cli(*argv: str, stdin: str | None = None) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The run, and the modules it imported."""
    run = subprocess.run([sys.executable, "-X", "importtime", "-m", "symbolicator", *argv], input=stdin,
                         capture_output=True, text=True, timeout=180, check=False)
    modules = {line.split("|")[-1].strip() for line in run.stderr.splitlines() if line.startswith("import time:")}
    run.stderr = "\n".join(line for line in run.stderr.splitlines() if not line.startswith("import time:"))
    return run, modules


def test_resolve_converts_once_then_opens_the_cached_symcache(tmp_path: Path) -> None:
    elf = tmp_path / "cpp_gcc_O3_dwarf5"
    shutil.copy(NATIVE_OUT / "elf" / elf.name, elf)
    address, truth = _inlined_address(elf.name)
    argv = ("resolve", "--debug-file", str(elf), "--json", "--cache-dir", str(tmp_path / "c"), address)
    first, imported = cli(*argv)
    assert first.returncode == 0, first.stderr
    assert CONVERTS_NATIVE in imported
    assert [f["line"] for f in json.loads(first.stdout)["frames"]] == [t["line"] or None for t in truth]
    second, imported = cli(*argv)
    assert (second.returncode, second.stdout) == (0, first.stdout)
    assert CONVERTS_NATIVE not in imported
    assert list((tmp_path / "c" / "derived").rglob("*.val"))  # the service's CacheStore layout

    elf.write_bytes(elf.read_bytes())  # rebuilt in place: same path, new version
    third, imported = cli(*argv)
    assert (third.returncode, third.stdout) == (0, first.stdout)
    assert CONVERTS_NATIVE in imported


def test_no_cache_writes_nothing_and_default_dir_follows_xdg(tmp_path: Path) -> None:
    elf = str(NATIVE_OUT / "elf" / "c_gcc_O2_dwarf5")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path / "xdg")  # the autouse fixture restores it
    plain, imported = cli("resolve", "--debug-file", elf, "--no-cache", "0x1139")
    assert plain.returncode == 0 and CONVERTS_NATIVE in imported
    assert not (tmp_path / "xdg").exists()
    cached, _ = cli("resolve", "--debug-file", elf, "0x1139")
    assert cached.stdout == plain.stdout
    assert list((tmp_path / "xdg" / "symbolicator" / "derived").rglob("*.val"))
    again, imported = cli("resolve", "--debug-file", elf, "0x1139")
    assert again.stdout == plain.stdout and CONVERTS_NATIVE not in imported


def test_a_cache_too_small_for_the_file_still_answers(tmp_path: Path) -> None:
    elf = str(NATIVE_OUT / "elf" / "c_gcc_O2_dwarf5")
    run, _ = cli("resolve", "--debug-file", elf, "--cache-dir", str(tmp_path), "--cache-size", "1 KiB", "0x1139")
    reference, _ = cli("resolve", "--debug-file", elf, "--no-cache", "0x1139")
    assert (run.returncode, run.stdout) == (0, reference.stdout)
    assert "warning: could not keep the converted file" in run.stderr
    bad, _ = cli("resolve", "--debug-file", elf, "--cache-size", "lots", "0x1139")
    assert bad.returncode == 2 and "--cache-size" in bad.stderr


def test_resolve_js_second_run_skips_the_conversion(tmp_path: Path) -> None:
    shutil.copy(JS_OUT / "esbuild" / "app.js", tmp_path / "app.js")
    shutil.copy(JS_OUT / "esbuild" / "app.js.map", tmp_path / "app.js.map")
    frame = _expected("esbuild", "node")["frames"][0]
    argv = ("resolve-js", "--sourcemap", str(tmp_path / "app.js.map"), "--json", "--cache-dir", str(tmp_path / "c"),
            f"{frame['line']}:{frame['column']}")
    first, imported = cli(*argv)
    assert first.returncode == 0, first.stderr
    assert CONVERTS_JS in imported
    answer = json.loads(first.stdout)
    assert answer["source"].endswith("/src/shop/cart.ts")  # joined to the map's folder
    assert (answer["original_line"], answer["original_column"]) == (44, 13)
    assert answer["function"] == "Cart.checkout"
    second, imported = cli(*argv)
    assert (second.returncode, second.stdout) == (0, first.stdout)
    assert CONVERTS_JS not in imported
    no_scopes, imported = cli(*argv, "--no-scopes")  # a different conversion: its own entry
    assert json.loads(no_scopes.stdout)["function"] is None and CONVERTS_JS not in imported


def test_symbolicate_keeps_symcaches_of_the_symbols_folders(tmp_path: Path) -> None:
    from tests.support.native_service import elf_module

    elf = NATIVE_OUT / "elf" / "c_gcc_O2_dwarf5"
    request = {"stacktraces": [{"frames": [{"instruction_addr": "0x555555555234", "adjust_instruction_addr": False}]}],
               "modules": [elf_module(elf, 0x555555554000)]}
    (tmp_path / "request.json").write_text(json.dumps(request))
    argv = ("symbolicate", str(tmp_path / "request.json"), "--symbols", str(NATIVE_OUT / "elf"), "--json",
            "--cache-dir", str(tmp_path / "c"))
    first, imported = cli(*argv)
    assert first.returncode == 0, first.stderr
    assert CONVERTS_NATIVE in imported
    assert json.loads(first.stdout)["stacktraces"][0]["frames"][0]["status"] == "symbolicated"
    second, imported = cli(*argv)
    assert (second.returncode, second.stdout) == (0, first.stdout)
    assert CONVERTS_NATIVE not in imported


def test_a_damaged_cached_file_is_converted_again(tmp_path: Path) -> None:
    """The next run trusts a cached file only in the state a previous run verified (no re-hash on
    every run); a byte flipped since then changes that state, so the file is hashed, refused and
    converted again."""
    elf = str(NATIVE_OUT / "elf" / "cpp_gcc_O3_dwarf5")
    address, _ = _inlined_address("cpp_gcc_O3_dwarf5")
    argv = ("resolve", "--debug-file", elf, "--json", "--cache-dir", str(tmp_path), address)
    first, _ = cli(*argv)
    second, imported = cli(*argv)
    assert second.stdout == first.stdout and CONVERTS_NATIVE not in imported
    stored = max((tmp_path / "derived").rglob("*.val"), key=lambda p: p.stat().st_size)  # the symcache
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))
    third, imported = cli(*argv)
    assert (third.returncode, third.stdout) == (0, first.stdout)
    assert CONVERTS_NATIVE in imported
