"""`symbolicator inject PATH…`: add debug IDs to JS bundles and their source maps.

The engine is `symbolicator/sourcemaps/inject.py`; this module walks the arguments, prints a
report shaped like sentry-cli's, and writes nothing with `--dry-run`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DESCRIPTION = """\
Add debug IDs to JavaScript bundles (.js, .cjs, .mjs) and their source maps, exactly as
`sentry-cli sourcemaps inject` (3.x) writes them, so that either tool's output uploads
and resolves by debug ID:

  - a one-line snippet near the top of the bundle registers the ID at runtime
    (globalThis._sentryDebugIds), and a trailing `//# debugId=<uuid>` comment names it;
  - the source map (found through `sourceMappingURL`, an inline base64 `data:` URL, or
    X.js.map beside the bundle) gets a `debugId` field and its mappings are shifted by the
    inserted lines (index maps: section offsets), so every position still resolves;
  - a bundle without a usable map gets the snippet at its end, so nothing moves.

The ID is derived from the map's bytes (SHA-1, UUIDv5 layout), so it is the same on every
run; a map that already has a debug ID keeps it. Bundles that already carry a
`//# debugId=` comment are reported as ignored, so running inject twice changes nothing.
Directories are searched recursively."""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "inject",
        help="add debug IDs to JS bundles and source maps (as sentry-cli sourcemaps inject)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="bundle files or directories")
    parser.add_argument("--dry-run", action="store_true", help="list what would change; write nothing")
    return parser


def run(args: argparse.Namespace) -> int:
    from symbolicator.sourcemaps.inject import Ignored, Injection, apply, plan

    results = plan(args.paths)
    injected = [r for r in results if isinstance(r, Injection)]
    ignored = [r for r in results if isinstance(r, Ignored)]
    if not args.dry_run:
        for injection in injected:
            apply(injection)
    verb = "Would modify" if args.dry_run else "Modified"
    out = sys.stdout
    if injected:
        print(f"{verb}: source files", file=out)
        for r in injected:
            where = "snippet at the end" if r.placement == "end" else "snippet at the top"
            print(f"  {r.debug_id} - {r.js_path} ({where})", file=out)
            if r.warning:
                print(f"      - warning: {r.warning}", file=out)
        maps = [r for r in injected if r.map_path is not None and r.new_map is not None]
        if maps:
            print(f"{verb}: source maps", file=out)
            for r in maps:
                print(f"  {r.debug_id} - {r.map_path}", file=out)
    if ignored:
        print("Ignored:", file=out)
        for skipped in ignored:
            print(f"  {skipped.debug_id or '-'} - {skipped.js_path} ({skipped.reason})", file=out)
    if not results:
        print("No .js, .cjs or .mjs files found.", file=out)
    return 0
