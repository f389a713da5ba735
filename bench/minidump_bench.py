"""Minidumps (issue 14): a warm 30-thread dump, ours beside `minidump-stackwalk`; converting a big
library's CFI, ours beside building its symcache.

    python -m bench.minidump_bench [--pairs N] [--debug-file PATH] [--out bench/results/minidump.md]

1. **Warm dump.** Ours: the real service (`python -m symbolicator serve`, one worker) with the
   fixture binaries uploaded and the dump posted once (CFI caches and symcaches built), then
   `POST /minidump` of `tests/fixtures/minidump/dumps/segv-worker-30threads.dmp`, end to end over
   loopback. The peer: `minidump-stackwalk --json --symbols-path SYMS` on the same dump, its whole
   process, with the `.sym` files `dump_syms` wrote for the same binaries (made untimed, once).
   Interleaved pairs; each side's best; the ratio is best ÷ best.
2. **CFI conversion.** `native.cfi.build.build_from_elf` beside `symcache_build.build` on the
   same file (default: the system's `libLLVM-14.so.1`, 110 MB, 4.8 MB of `.eh_frame`), each in a
   fresh child (`bench/child.py`), best of the pairs.

3. **Mach-O compact unwind.** `native.cfi.build.build` beside PyPI `symbolic`'s
   `CfiCache.from_object` (Symbolicator's conversion) on the compact unwind fixture with the most
   functions (`tests/fixtures/compact_unwind/out/libmany_x86_64.dylib`, 747), each in a fresh
   child, best of the pairs.

4. **x64 PE unwind tables.** `native.cfi.build.build` beside `symbolic`'s `CfiCache.from_object`
   on a PE image's exception directory (wine's `kernelbase.dll`, 1,409 functions, 7,939 rows,
   when wine is installed; else the Windows fixture's `crasher.exe`), each in a fresh
   child, best of the pairs.

Nothing here asserts a time; the machine is shared, so only the ratios mean something.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

from bench.child import run_task

REPO = Path(__file__).resolve().parent.parent
MD = REPO / "tests/fixtures/minidump"
DUMP = MD / "dumps/segv-worker-30threads.dmp"
BINARIES = [MD / "out/crasher", MD / "out/libcrashlib.so", MD / "out/sysroot/libc.so.6",
            MD / "out/sysroot/ld-linux-x86-64.so.2"]
TOOLS = REPO / "tools/minidump"
DEFAULT_DEBUG_FILE = Path("/usr/lib/x86_64-linux-gnu/libLLVM-14.so.1")


def cfi_task(args: dict[str, Any]) -> Any:
    from symbolicator.native.cfi.build import build_from_elf

    path = Path(args["path"])
    return lambda: {"rows": build_from_elf(path)[1]["rows"]}


MACHO = REPO / "tests/fixtures/compact_unwind/out/libmany_x86_64.dylib"


def compact_task(args: dict[str, Any]) -> Any:
    from symbolicator.native.cfi.build import build

    path = Path(args["path"])
    return lambda: {"rows": build(path)[1]["rows"]}


def symbolic_compact_task(args: dict[str, Any]) -> Any:
    import io

    from symbolic.cfi import CfiCache
    from symbolic.debuginfo import Archive

    path = str(args["path"])

    def convert() -> dict[str, Any]:
        out = io.BytesIO()
        CfiCache.from_object(next(Archive.open(path).iter_objects())).write_to(out)
        return {"bytes": len(out.getvalue())}

    return convert


def compact(pairs: int) -> dict[str, Any]:
    ours = [run_task("bench.minidump_bench:compact_task", {"path": str(MACHO)}).seconds for _ in range(pairs)]
    peer = [run_task("bench.minidump_bench:symbolic_compact_task", {"path": str(MACHO)}).seconds
            for _ in range(pairs)]
    return {"ours": ours, "peer": peer}


PE_IMAGES = [Path("/usr/lib/x86_64-linux-gnu/wine/x86_64-windows/kernelbase.dll"),
             REPO / "tests/fixtures/minidump_windows/out/crasher.exe"]


def pe_unwind(pairs: int) -> dict[str, Any]:
    """Our PE unwind conversion beside symbolic's, on the first image of `PE_IMAGES` present."""
    path = next(p for p in PE_IMAGES if p.exists())
    ours = [run_task("bench.minidump_bench:compact_task", {"path": str(path)}) for _ in range(pairs)]
    peer = [run_task("bench.minidump_bench:symbolic_compact_task", {"path": str(path)}).seconds
            for _ in range(pairs)]
    return {"ours": [s.seconds for s in ours], "peer": peer, "path": path, "rows": ours[0].extra["rows"]}


def symcache_task(args: dict[str, Any]) -> Any:
    from symbolicator.native.symcache_build import build

    path = Path(args["path"])
    return lambda: {"bytes": len(build(path))}


def _post(url: str) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    r = requests.post(f"{url}/minidump", params={"scope": "acme/web"},
                      files={"upload_file_minidump": ("crash.dmp", DUMP.read_bytes())}, timeout=600)
    seconds = time.perf_counter() - started
    r.raise_for_status()
    return seconds, r.json()


def _stackwalk(syms: Path) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    out = subprocess.run([str(TOOLS / "minidump-stackwalk"), "--json", "--symbols-path", str(syms), str(DUMP)],
                         capture_output=True, text=True, check=True).stdout
    return time.perf_counter() - started, json.loads(out)


def warm_dump(pairs: int) -> dict[str, Any]:
    sys.path.insert(0, str(REPO))
    from tests.support.native_service import start_service, upload

    with tempfile.TemporaryDirectory(prefix="bench-minidump-") as tmp:
        syms = Path(tmp, "syms")
        subprocess.run([str(TOOLS / "dump_syms"), "--inlines", "-s", str(syms), *map(str, BINARIES)],
                       check=True, capture_output=True)
        svc = start_service(Path(tmp, "svc"))
        try:
            for path in BINARIES:
                upload(svc, path)
            cold, answer = _post(svc.url)
            ours, theirs = [], []
            for i in range(pairs):
                order = (_post, _stackwalk) if i % 2 == 0 else (_stackwalk, _post)
                for fn in order:
                    if fn is _post:
                        ours.append(_post(svc.url)[0])
                    else:
                        seconds, peer = _stackwalk(syms)
                        theirs.append(seconds)
        finally:
            svc.stop()
    frames = sum(len({f["original_index"] for f in t["frames"]}) for t in answer["stacktraces"])
    peer_frames = sum(len(t["frames"]) for t in peer["threads"])
    return {"cold": cold, "ours": ours, "theirs": theirs, "threads": len(answer["stacktraces"]),
            "frames": frames, "peer_frames": peer_frames}


def conversion(path: Path, pairs: int) -> dict[str, Any]:
    cfi, sym = [], []
    extra: dict[str, Any] = {}
    for _ in range(pairs):
        s = run_task("bench.minidump_bench:cfi_task", {"path": str(path)})
        cfi.append(s.seconds)
        extra["rows"], extra["cfi_rss"] = s.extra["rows"], s.maxrss
        s = run_task("bench.minidump_bench:symcache_task", {"path": str(path)})
        sym.append(s.seconds)
        extra["symcache_rss"] = s.maxrss
    return {"cfi": cfi, "symcache": sym, **extra}


def render(warm: dict[str, Any], conv: dict[str, Any] | None, path: Path, command: str,
           macho: dict[str, Any] | None = None, pe: dict[str, Any] | None = None) -> str:
    o, t = min(warm["ours"]), min(warm["theirs"])
    lines = [
        "# Minidump benchmark (issue 14)", "",
        (f"`{command}`, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores "
         "**shared with other work**: read the ratios, not the absolute times."), "",
        "| row | ours | peer | ratio (ours ÷ peer) |", "| --- | --- | --- | --- |",
        (f"| warm 30-thread dump ({warm['threads']} threads, {warm['frames']} frames; peer {warm['peer_frames']}) | "
         f"{o * 1000:.0f} ms (`POST /minidump`, end to end) | {t * 1000:.0f} ms (`minidump-stackwalk` process) | "
         f"{o / t:.2f} |"),
    ]
    if conv is not None:
        c, s = min(conv["cfi"]), min(conv["symcache"])
        lines.append(f"| CFI conversion of `{path.name}` ({path.stat().st_size / 1e6:.0f} MB, {conv['rows']} rows) | "
                     f"{c:.1f} s, {conv['cfi_rss'] / 2**20:.0f} MiB RSS | {s:.1f} s symcache build, "
                     f"{conv['symcache_rss'] / 2**20:.0f} MiB RSS | {c / s:.2f} |")
    if macho is not None:
        m, ms = min(macho["ours"]), min(macho["peer"])
        lines.append(f"| compact unwind of `{MACHO.name}` (747 functions) | {m * 1000:.0f} ms | "
                     f"{ms * 1000:.0f} ms (`symbolic` `CfiCache.from_object`) | {m / ms:.2f} |")
    if pe is not None:
        p, ps = min(pe["ours"]), min(pe["peer"])
        lines.append(f"| x64 PE unwind tables of `{pe['path'].name}` ({pe['rows']} rows) | {p * 1000:.0f} ms | "
                     f"{ps * 1000:.0f} ms (`symbolic` `CfiCache.from_object`) | {p / ps:.2f} |")
    lines += ["", f"Cold first request (conversions included): {warm['cold'] * 1000:.0f} ms.", "",
              "Samples (s): ours " + ", ".join(f"{x:.3f}" for x in warm["ours"]) + "; peer "
              + ", ".join(f"{x:.3f}" for x in warm["theirs"])]
    if conv is not None:
        lines.append("CFI " + ", ".join(f"{x:.2f}" for x in conv["cfi"]) + "; symcache "
                     + ", ".join(f"{x:.2f}" for x in conv["symcache"]))
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.minidump_bench", description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--debug-file", type=Path, default=DEFAULT_DEBUG_FILE)
    parser.add_argument("--no-conversion", action="store_true")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/minidump.md")
    args = parser.parse_args(argv)
    subprocess.run([str(REPO / "scripts/fetch-minidump-tools")], check=True, capture_output=True)
    warm = warm_dump(args.pairs)
    conv = None if args.no_conversion or not args.debug_file.exists() else conversion(args.debug_file, 2)
    text = render(warm, conv, args.debug_file, "python -m bench.minidump_bench " + " ".join(argv or sys.argv[1:]),
                  compact(args.pairs), pe_unwind(args.pairs))
    args.out.write_text(text)
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
