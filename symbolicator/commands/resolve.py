"""`symbolicator resolve`: offline native lookups, like `llvm-symbolizer --inlining` (docs/cli.md).

The debug file is converted into a symcache once and kept in the offline cache
(`commands/offline_cache.py`), so the next run on the same file only opens it;
then every address is a binary search. A stripped ELF binary is followed to its
split debug file (build-id path, `.gnu_debuglink`) and a Mach-O binary to the
`.dSYM` beside it, as llvm-symbolizer does; `--arch` picks the slice of a fat
file, and a fat file without it is a usage error that lists the slices.

Every input line gets exactly one answer, in order: a line that is not an
address is echoed back (as llvm-symbolizer does; `{"input": …, "error": …}` in
JSON), reported on stderr, and makes the exit status 1. Engines are imported in
`run`, never at module level (see `symbolicator/cli.py`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from symbolicator.commands import offline_cache
from symbolicator.errors import FormatError, UsageError

if TYPE_CHECKING:
    from symbolicator.native.objects import ObjectInfo
    from symbolicator.native.symcache import Frame, SymCache


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "resolve",
        help="look up native addresses in a debug file (offline, like llvm-symbolizer)",
        description="Resolve file virtual addresses to function, file and line, inlined calls included. "
        "Reads the addresses from stdin (one per line) when none are given; every input gets one answer, "
        "in order, and an input that is not an address is echoed back and reported on stderr (exit 1).",
    )
    parser.add_argument("--debug-file", required=True, metavar="F",
                        help="ELF file, Mach-O file, fat file, .dSYM bundle, PE image (.exe/.dll, its PDB found "
                             "beside it), PDB, or wasm module (addresses: module offsets)")
    parser.add_argument("--arch", metavar="A", help="architecture slice of a fat file (x86_64, arm64, …)")
    parser.add_argument("--json", action="store_true", help="one JSON object per address (NDJSON)")
    offline_cache.add_arguments(parser)
    parser.add_argument("addresses", nargs="*", metavar="ADDR",
                        help="hex file address, 0x optional (PE: a VA at or above the ImageBase, else an RVA; "
                             "PDB: an RVA)")
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


def load_symcache(debug_file: str, arch: str | None, cache: offline_cache.OfflineCache | None = None) -> SymCache:
    """The symcache of the debug file that belongs to `debug_file` (itself, split file or dSYM)."""
    from symbolicator.native.debuglink import find_debug_file
    from symbolicator.native.symcache import SYMCACHE_VERSION, SymCache
    from symbolicator.types import Arch

    path = Path(debug_file)
    if not path.exists():
        raise FileNotFoundError(2, "no such file or folder", debug_file)
    if path.is_dir() and not (path / "Contents" / "Resources" / "DWARF").is_dir():
        raise FormatError(f"{debug_file}: a folder, but not a .dSYM bundle (no Contents/Resources/DWARF inside); "
                          "pass the debug file itself or its .dSYM")
    target = find_debug_file(path)
    symbol_file = None if path.is_dir() else path
    wanted = Arch.parse(arch) if arch else None

    def build() -> bytes:
        from symbolicator.native.symcache_build import build as build_symcache

        return build_symcache(target, wanted, symbol_file=symbol_file)

    if cache is None:
        return SymCache.from_bytes(build())
    ident = offline_cache.identity([target, symbol_file], str(wanted or "any"))
    made = cache.converted("cli-symcache", SYMCACHE_VERSION, ident, build)
    return SymCache.open(made) if isinstance(made, Path) else SymCache.from_bytes(bytes(made))


def resolve_lines(cache: SymCache, inputs: Iterable[str], as_json: bool, out: TextIO, err: TextIO,
                  rebase: Callable[[int], int] | None = None) -> int:
    """One answer per input, in order; 1 when some input was not an address. `rebase` turns an input address
    into the symcache's (PE: VA or RVA, `resolve_pe`); the answer names the address as given."""
    status = 0
    for text in inputs:
        address = parse_address(text)
        if address is None:
            print(f"symbolicator resolve: error: not a hex address: {text!r}", file=err)
            status = 1
            out.write(json.dumps({"input": text, "error": "not a hex address"}) + "\n" if as_json else text + "\n")
        elif as_json:
            out.write(format_json(address, cache.lookup(rebase(address) if rebase else address)) + "\n")
        else:
            out.write(format_text(cache.lookup(rebase(address) if rebase else address)) + "\n")
        out.flush()
    return status


def run(args: argparse.Namespace) -> int:
    from symbolicator.native.dwarf.macho import ArchitectureRequired
    from symbolicator.types import Arch

    if args.arch and Arch.parse(args.arch) == Arch.UNKNOWN:
        raise UsageError(f"unknown architecture {args.arch!r}")
    cache = offline_cache.OfflineCache.from_args(args)
    rebase = None
    try:
        pe = _pe_info(args.debug_file)
        if pe is not None:
            from symbolicator.commands import resolve_pe

            symcache, rebase = resolve_pe.load(Path(args.debug_file), pe, cache)
        else:
            symcache = load_symcache(args.debug_file, args.arch, cache)
    except ArchitectureRequired as exc:
        raise UsageError(f"{args.debug_file} is a fat file; pick a slice with --arch "
                         f"(one of: {', '.join(exc.arches)})") from None
    finally:
        cache.close()
    return resolve_lines(symcache, _inputs(args, sys.stdin), args.json, sys.stdout, sys.stderr, rebase)


def _pe_info(debug_file: str) -> ObjectInfo | None:
    """The PE image or PDB at `debug_file` (by its magic, then `identify`), else None."""
    from symbolicator.native.objects import PDB_MAGIC, PE_MAGIC, identify

    path = Path(debug_file)
    if not path.is_file():
        return None
    with open(path, "rb") as fh:
        head = fh.read(len(PDB_MAGIC))
    if not head.startswith((PE_MAGIC, PDB_MAGIC)):
        return None
    return identify(path)[0]
