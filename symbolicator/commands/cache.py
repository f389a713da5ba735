"""`symbolicator cache stats|prune`: inspect and trim the on-disk caches.

The directory and the two size limits come from the settings (`cache.dir`,
`cache.downloads_max_bytes`, `cache.derived_max_bytes`; `--config F` or
`SYMBOLICATOR_CONFIG`); `--cache-dir` overrides the directory. Without settings the
limits stored in the cache by the service that last opened it are kept.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

DEFAULT_CACHE_DIR = Path("cache")
MIB = 1024 * 1024

_EPILOG = """\
examples:
  symbolicator cache stats                     the ./cache directory, human-readable
  symbolicator cache stats --json              the same as one JSON object
  symbolicator cache prune                     drop expired entries, trim to the size limits
  symbolicator cache prune --all               empty both caches
  symbolicator cache stats --config prod.toml  the directory and limits of a config file
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "cache",
        help="inspect and trim the on-disk cache",
        description="Inspect and trim the on-disk caches: downloads (fetched debug files, "
        "source maps) and derived (symcaches, sourcemap caches), each with its own size limit.",
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="cache_action", metavar="{stats,prune}", required=True)
    stats = actions.add_parser(
        "stats",
        help="entries, size and limit of each cache",
        description="Show entries (negative ones: cached 'not found' / 'malformed' answers), "
        "size on disk and size limit of the downloads and derived caches.",
    )
    _add_common(stats)
    stats.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    prune = actions.add_parser(
        "prune",
        help="drop expired entries and trim to the size limits",
        description="Drop expired entries and evict least-recently-used ones until each cache "
        "is under its size limit; with --all, empty both caches. Safe while the service runs.",
    )
    _add_common(prune)
    prune.add_argument("--all", action="store_true", help="remove every entry, not only expired or excess ones")
    prune.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return parser


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="cache directory (default: cache.dir of the settings, else ./cache)",
    )
    parser.add_argument("--config", metavar="F", help="TOML config file (default: $SYMBOLICATOR_CONFIG)")


def run(args: argparse.Namespace) -> int:
    from symbolicator.caching.store import Caches

    cache_dir, downloads_max, derived_max = _resolve(args)
    if not cache_dir.is_dir():
        if args.cache_action == "prune":
            print(f"no cache at {cache_dir}: nothing to prune", file=sys.stderr)
            return 0
        print(f"symbolicator cache: error: no cache at {cache_dir}", file=sys.stderr)
        return 1
    caches = Caches.open(cache_dir, downloads_max, derived_max)
    try:
        if args.cache_action == "stats":
            report = {store.name: store.stats() for store in caches.stores()}
        else:
            report = {store.name: store.prune(everything=args.all) for store in caches.stores()}
        if args.json:
            print(json.dumps({"cache_dir": str(cache_dir), **report}, indent=2))
        elif args.cache_action == "stats":
            _print_stats(cache_dir, report)
        else:
            _print_prune(report)
    finally:
        caches.close()
    return 0


def _resolve(args: argparse.Namespace) -> tuple[Path, int | None, int | None]:
    """Directory and limits: flag, then settings, then defaults."""
    try:
        from symbolicator.config import load_settings
    except ModuleNotFoundError as exc:
        if exc.name != "symbolicator.config" or args.config:
            raise
        return (args.cache_dir or DEFAULT_CACHE_DIR, None, None)
    cache = load_settings(args.config).cache
    return (
        args.cache_dir or Path(cache.dir),
        int(cache.downloads_max_bytes),
        int(cache.derived_max_bytes),
    )


def _mib(n: int) -> str:
    return f"{n / MIB:,.1f} MiB"


def _print_stats(cache_dir: Path, report: dict[str, dict[str, Any]]) -> None:
    print(f"cache directory: {cache_dir}")
    print(f"{'cache':<10} {'entries':>9} {'negative':>9} {'size':>14} {'limit':>14} {'used':>6}")
    for name, s in report.items():
        used = 100.0 * s["bytes"] / s["max_bytes"] if s["max_bytes"] else 0.0
        print(
            f"{name:<10} {s['entries']:>9,} {s['negative_entries']:>9,} "
            f"{_mib(s['bytes']):>14} {_mib(s['max_bytes']):>14} {used:>5.1f}%"
        )


def _print_prune(report: dict[str, dict[str, Any]]) -> None:
    for name, p in report.items():
        print(
            f"{name}: removed {p['removed_entries']:,} entries and {p['removed_temp_files']:,} stale temp files; "
            f"{_mib(p['bytes_before'])} -> {_mib(p['bytes'])} (limit {_mib(p['max_bytes'])}), "
            f"{p['entries']:,} entries left"
        )
