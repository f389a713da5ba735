"""`pe`: a PE image through identification, its own symcache, and offline PDB pairing.

An input is the image's bytes, written to a scratch file: `read_pe` and `read_exports` on the
bytes, `objects.identify` (what uploads and source lookups do), `native_modules.convert_debug_file`
(the worker job: exports + MinGW DWARF → symcache), `SymCache.open` and lookups around the stated
ImageBase, serialised as a response is; then `pairing.find_pdb` with the PDB named in the
CodeView record (a fuzzed path, looked for beside the scratch file only).

Seeds are the committed fixtures (tests/fixtures/pe: clang + lld-link, MSVC ABI x86_64 and PE32 x86, MinGW with
DWARF). Both engines edit what the reader trusts (`object_layout._pe`: e_lfanew, COFF and optional
header fields, data directories, section headers, the debug and export directories, the CodeView
age) and the section bytes, or truncate; atheris also mutates bytes its own way.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fuzz import object_layout
from fuzz.scratch import scratch_dir
from symbolicator.native.objects import identify
from symbolicator.native.pe import read_exports, read_pe
from symbolicator.native.pe.pairing import find_pdb
from symbolicator.native.symcache import SymCache
from symbolicator.service.native.modules import convert_debug_file

if TYPE_CHECKING:
    from hypothesis import strategies as st

LOOKUPS = 256
LOOKUP_STEP = 0x10
_PE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "pe"
SEEDS = {"pe-msvc-abi-exports": "app.exe", "pe-mingw-dwarf": "mg.exe", "pe32-x86": "app_x86.exe"}
KINDS = ("field", "field", "field", "field", "region", "smash", "flip", "truncate")


def run(data: bytes) -> None:
    pe = read_pe(data)
    read_exports(data, pe)
    src = scratch_dir() / "image.exe"
    out = scratch_dir() / "image.symcache"
    src.write_bytes(data)
    (info,) = identify(src)
    find_pdb(src, info)
    meta = convert_debug_file(str(src), str(out), None)
    symcache = SymCache.open(out)
    try:
        base = int(meta["image_vmaddr"])
        addrs = [0, 2**64 - 1, base - 1] + [base + 0x1000 + k * LOOKUP_STEP for k in range(LOOKUPS)]
        orjson.dumps([meta, [[f.to_json() for f in symcache.lookup(a)] for a in addrs if 0 <= a < 2**64]])
    finally:
        symcache.close()


def seeds() -> dict[str, bytes]:
    return {name: (_PE / rel).read_bytes() for name, rel in SEEDS.items()}


@cache
def _seed(name: str) -> tuple[bytes, object_layout.Layout]:
    data = seeds()[name]
    return data, object_layout.layout(data)


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Half structured edits (header fields, directories, section bytes), half libFuzzer's."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        from fuzz.json_mutate import byte_mutate

        return byte_mutate(data, max_size)
    ops = [(rng.choice(KINDS), rng.getrandbits(32), rng.getrandbits(rng.choice((8, 16, 64))), rng.getrandbits(16))
           for _ in range(rng.randint(1, 4))]
    return object_layout.apply(data, ops)[:max_size]


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    op = st.tuples(st.sampled_from(KINDS), st.integers(0, 2**32 - 1),
                   st.one_of(st.integers(0, 64), st.integers(0, 2**64 - 1)), st.integers(0, 2**16 - 1))

    def build(choice: tuple[str, list[object_layout.Op]]) -> bytes:
        data, lay = _seed(choice[0])
        return object_layout.apply(data, choice[1], lay)

    return st.tuples(st.sampled_from(sorted(SEEDS)), st.lists(op, min_size=1, max_size=5)).map(build)
