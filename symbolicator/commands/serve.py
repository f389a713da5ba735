"""`symbolicator serve`: not built yet (placeholder until its issue lands)."""

from __future__ import annotations

import argparse

from symbolicator.errors import SymbolicatorError


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> argparse.ArgumentParser:
    return sub.add_parser("serve", help="(not built yet)")


def run(args: argparse.Namespace) -> int:
    raise SymbolicatorError("'serve' is not built yet")
