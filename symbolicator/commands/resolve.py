"""`symbolicator resolve`: offline native lookups, like `llvm-symbolizer --inlining` (API.md §4).

The debug file is converted into a symcache in memory once per run, then every
address is a binary search. A stripped ELF binary is followed to its split
debug file (build-id path, `.gnu_debuglink`) and a Mach-O binary to the
`.dSYM` beside it, as llvm-symbolizer does; `--arch` picks the slice of a fat
file, and a fat file without it is a usage error that lists the slices.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from symbolicator.native.debuglink import find_debug_file
from symbolicator.native.macho_dwarf import ArchitectureRequired
from symbolicator.native.symcache import Frame, SymCache
from symbolicator.native.symcache_build import build
from symbolicator.types import Arch


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "resolve",
        help="look up native addresses in a debug file (offline, like llvm-symbolizer)",
        description="Resolve file virtual addresses to function, file and line, inlined calls included. "
        "Reads the addresses from stdin (one per line) when none are given.",
    )
    parser.add_argument("--debug-file", required=True, metavar="F",
                        help="ELF file, Mach-O file, fat file or .dSYM bundle")
    parser.add_argument("--arch", metavar="A", help="architecture slice of a fat file (x86_64, arm64, …)")
    parser.add_argument("--json", action="store_true", help="one JSON object per address (NDJSON)")
    parser.add_argument("addresses", nargs="*", metavar="ADDR", help="hex file address, 0x optional")
    return parser


def parse_address(text: str) -> int | None:
    """A hex address with or without `0x`; None when it is not one."""
    s = text.strip().lower()
    if s.startswith("0x"):
        s = s[2:]
    if not s or len(s) > 16 or any(c not in "0123456789abcdef" for c in s):
        return None
    return int(s, 16)


def format_json(address: int, frames: list[Frame]) -> str:
    return json.dumps({"address": f"0x{address:x}", "frames": [f.to_json() for f in frames]})


def format_text(frames: list[Frame]) -> str:
    """llvm-symbolizer's plain output: function, then file:line:column, per frame; a blank line ends."""
    if not frames:
        return "??\n??:0:0\n"
    out = []
    for f in frames:
        out.append(f.function or "??")
        out.append(f"{f.file or '??'}:{f.line or 0}:{f.column or 0}")
    return "\n".join(out) + "\n"


def _inputs(args: argparse.Namespace, stdin: TextIO) -> Iterator[str]:
    if args.addresses:
        yield from args.addresses
        return
    for line in stdin:
        if line.strip():
            yield line.strip()


def load_symcache(debug_file: str, arch: str | None) -> SymCache:
    """Build the symcache of the debug file that belongs to `debug_file` (itself, split file or dSYM)."""
    path = Path(debug_file)
    if not path.exists():
        raise FileNotFoundError(f"no such file: {debug_file}")
    target = find_debug_file(path)
    symbol_file = None if path.is_dir() else path
    return SymCache.from_bytes(build(target, Arch.parse(arch) if arch else None, symbol_file=symbol_file))


def resolve_lines(cache: SymCache, inputs: Iterable[str], as_json: bool, out: TextIO, err: TextIO) -> int:
    status = 0
    for text in inputs:
        address = parse_address(text)
        if address is None:
            print(f"symbolicator resolve: error: not a hex address: {text!r}", file=err)
            status = 2
            continue
        frames = cache.lookup(address)
        if as_json:
            out.write(format_json(address, frames) + "\n")
        else:
            out.write(format_text(frames) + "\n")
        out.flush()
    return status


def run(args: argparse.Namespace) -> int:
    if args.arch and Arch.parse(args.arch) == Arch.UNKNOWN:
        print(f"symbolicator resolve: error: unknown architecture {args.arch!r}", file=sys.stderr)
        return 2
    bad = [a for a in args.addresses if parse_address(a) is None]
    if bad:
        print(f"symbolicator resolve: error: not a hex address: {bad[0]!r}", file=sys.stderr)
        return 2
    try:
        cache = load_symcache(args.debug_file, args.arch)
    except ArchitectureRequired as exc:
        print(f"symbolicator resolve: error: {args.debug_file} is a fat file; pick a slice with --arch "
              f"(one of: {', '.join(exc.arches)})", file=sys.stderr)
        return 2
    return resolve_lines(cache, _inputs(args, sys.stdin), args.json, sys.stdout, sys.stderr)
