"""`python -m symbolicator.native.pdb IN.pdb OUT.symcache`: convert one PDB, print its debug id and size.

The whole-process form of the conversion, what the bench times beside a script calling PyPI
`symbolic` (bench/pdb_bench.py); the service runs `build_symcache` in its worker pool instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

from symbolicator.errors import FormatError
from symbolicator.native.pdb.conversion import build_symcache
from symbolicator.native.pdb.identity import identity


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m symbolicator.native.pdb IN.pdb OUT.symcache", file=sys.stderr)
        return 2
    src, out = Path(argv[0]), Path(argv[1])
    try:
        guid, age = identity(src)
        data = build_symcache(src)
    except FormatError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    print(f"{guid}-{age:x} {len(data)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
