"""What the fault tests and the chaos scenarios send, and how they judge the answers.

The fixtures are the repository's real ones: a gcc ELF for warm native
requests, a C++ one for a cold module, `tests/fixtures/chaos/out/big_elf` (a
conversion of about a second, to aim a crash at), and the esbuild bundle with
its map for JS. Correctness is judged against independent truth: native frames
against the symbol table (read with pyelftools), JS frames against where
`node --enable-source-maps` put them (`tests/fixtures/js/expected`).
Uploads go through `symbolicator upload` (sentry-cli's protocol), run in-process.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path
from typing import Any

import requests
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from symbolicator import cli
from tests.support.service import ServiceProcess
from tests.support.native_service import SCOPE, TOKEN, elf_module

REPO = Path(__file__).resolve().parent.parent
ELF_DIR = REPO / "tests/fixtures/native/out/elf"
WARM_ELF = ELF_DIR / "c_gcc_O2_dwarf5"
WARM_FUNCTIONS = ["checksum", "accumulate", "main"]
COLD_ELF = ELF_DIR / "cpp_gcc_O2_dwarf5"
BIG_ELF = REPO / "tests/fixtures/chaos/out/big_elf"
JS_OUT = REPO / "tests/fixtures/js/out/esbuild"
NODE_FRAMES: list[dict[str, Any]] = json.loads(
    (REPO / "tests/fixtures/js/expected/esbuild.node.json").read_text())["frames"]
HOST = "https://shop.example.com"

__all__ = ["SCOPE", "TOKEN"]


def functions(path: Path, names: list[str]) -> list[int]:
    """File addresses a few bytes into the named functions (pyelftools, not our code)."""
    with open(path, "rb") as f:
        symtab = ELFFile(f).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), f"{path} has no symbol table"
        by_name = {s.name: s["st_value"] for s in symtab.iter_symbols() if s["st_info"]["type"] == "STT_FUNC"}
    return [by_name[n] + 4 for n in names]


def native_body(path: Path, names: list[str]) -> dict[str, Any]:
    module = elf_module(path)
    base = int(module["image_addr"], 16)
    frames = [{"instruction_addr": hex(base + addr)} for addr in functions(path, names)]
    return {"modules": [module], "stacktraces": [{"frames": frames}], "options": {"dif_candidates": True}}


def js_body(release: str = "1.0", host: str = HOST) -> dict[str, Any]:
    frames = [{"abs_path": f"{host}/app.js", "lineno": f["line"], "colno": f["column"]} for f in NODE_FRAMES]
    return {"release": release, "stacktraces": [{"frames": frames}]}


def scraped_js_body(url: str) -> dict[str, Any]:
    """The esbuild fixture's frames, the bundle at `url` (found by scraping)."""
    frames = [{"abs_path": url, "lineno": f["line"], "colno": f["column"]} for f in NODE_FRAMES]
    return {"stacktraces": [{"frames": frames}]}


def post(svc: ServiceProcess, path: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{svc.url}{path}", params={"scope": SCOPE}, json=body, timeout=60)


def symbolicated(svc: ServiceProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """A `completed` answer (asserted)."""
    r = post(svc, path, body)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["status"] == "completed", (answer, svc.log())
    return answer


def native_frames(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f["status"], f["original_index"], f.get("function"), f.get("abs_path"), f.get("lineno"))
            for f in answer["stacktraces"][0]["frames"]]


def js_frames(answer: dict[str, Any]) -> list[tuple[Any, ...]]:
    return [(f.get("abs_path"), f.get("lineno"), f.get("colno"), f.get("function"))
            for f in answer["stacktraces"][0]["frames"]]


def native_ok(answer: dict[str, Any], names: list[str]) -> bool:
    """Every frame symbolicated, the outermost function of each the symbol its address is in."""
    frames = answer["stacktraces"][0]["frames"]
    if {f["status"] for f in frames} != {"symbolicated"}:
        return False
    outermost = {f["original_index"]: f.get("function") for f in frames}
    return [outermost.get(i) for i in range(len(names))] == names


def js_ok(answer: dict[str, Any], host: str = HOST) -> bool:
    """Each frame where `node --enable-source-maps` put it."""
    out = answer["stacktraces"][0]["frames"]
    return [(f.get("abs_path"), f.get("lineno"), f.get("colno")) for f in out] == [
        (f"{host}/{f['original']['file']}", f["original"]["line"], f["original"]["column"]) for f in NODE_FRAMES]


def check_native(answer: dict[str, Any], names: list[str]) -> None:
    assert native_ok(answer, names), answer["stacktraces"][0]["frames"]


def check_js(answer: dict[str, Any]) -> None:
    assert js_ok(answer), answer["stacktraces"][0]["frames"]


def module_of(answer: dict[str, Any]) -> dict[str, Any]:
    return answer["modules"][0]  # type: ignore[no-any-return]


def js_folder(root: Path) -> Path:
    """The esbuild bundle and its map, copied where `symbolicator upload` can pack them."""
    folder = root / "js"
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("app.js", "app.js.map"):
        shutil.copy(JS_OUT / name, folder / name)
    return folder


def cli_upload(svc: ServiceProcess, *paths: Path, release: str = "1.0") -> tuple[int, str]:
    """`symbolicator upload --wait` in this process: (exit status, its output)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = cli.main(["upload", "--url", svc.url, "--token", TOKEN, "--scope", SCOPE, "--release", release,
                           "--wait", "--no-progress", *map(str, paths)])
    return status, out.getvalue()


def uploaded(svc: ServiceProcess, *paths: Path, release: str = "1.0") -> None:
    status, output = cli_upload(svc, *paths, release=release)
    assert status == 0, output + svc.log()


def cache_files(cache_dir: Path, magic: bytes) -> list[Path]:
    """Cached values (diskcache `*.val` files) that start with `magic`."""
    found = []
    for path in cache_dir.rglob("*.val"):
        try:
            with open(path, "rb") as f:
                if f.read(len(magic)) == magic:
                    found.append(path)
        except FileNotFoundError:
            continue
    return sorted(found)


def derived_caches(cache_dir: Path) -> list[Path]:
    """The symcaches and sourcemap caches in the derived cache."""
    derived = cache_dir / "derived"
    return cache_files(derived, b"SYMCACHE") + cache_files(derived, b"SMCACHE\0")


def converting(cache_dir: Path) -> list[Path]:
    """Temp files made for symcaches being built right now."""
    return list((cache_dir / "derived" / "tmp").glob("derived-*.symcache"))
