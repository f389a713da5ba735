"""`symbolicator …`: the command line of API.md §4.

Each command lives in `symbolicator/commands/<name>.py` with two functions:
`register(subparsers)` adds its parser, `run(args) -> int` does the work. This
module only dispatches. Exit status: 0 the command ran, 1 an input could not be
read or parsed (message on stderr), 2 usage errors (argparse's own).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from symbolicator import __version__
from symbolicator.errors import SymbolicatorError

COMMANDS = ("serve", "upload", "resolve", "resolve_js", "symbolicate", "inject", "cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="symbolicator",
        description="Symbolication service and offline tools for native (ELF, Mach-O/dSYM) and JavaScript stack traces.",
    )
    parser.add_argument("--version", action="version", version=f"symbolicator {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"symbolicator.commands.{name}")
        command_parser = module.register(sub)
        command_parser.set_defaults(run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except SymbolicatorError as exc:
        print(f"symbolicator {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"symbolicator {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
