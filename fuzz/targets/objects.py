"""`objects`: a debug file through identification, the worker's symcache conversion and lookups.

An input is the file's bytes. It is written to a scratch file and goes through what an
upload and a native request do with it: `objects.identify` (upload/assemble and source
lookups), then `service.native.modules.convert_debug_file` (the worker-pool job: identify, pick the
slice, read DWARF + symbol table, build the symcache) for the default and for each slice's
arch, then `SymCache.open` and lookups across the image, serialised as the response is.

Seeds are real binaries from `tests/fixtures/native*` (ELF from gcc and clang, DWARF 4 and 5,
compressed sections, a stripped library; thin and fat Mach-O, dSYM companions), and a source
bundle and a JS artifact bundle (`SYSB` + ZIP), which uploads identify the same way. Both engines
mutate them with `object_layout` (header fields, DWARF unit headers, section bytes,
truncation); atheris also with libFuzzer's own byte mutations.
"""

from __future__ import annotations

import io
import json
import random
import struct
import zipfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fuzz import object_layout
from fuzz.scratch import scratch_dir
from symbolicator.native.objects import identify
from symbolicator.native.symcache import SymCache
from symbolicator.service.native.modules import convert_debug_file

if TYPE_CHECKING:
    from hypothesis import strategies as st

MAX_SLICES = 4
LOOKUP_STEP = 0x20
LOOKUPS = 512
_NATIVE = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "native" / "out"
SEEDS = {
    "elf-c-clang-dwarf5": "elf/c_clang_O2_dwarf5",
    "elf-c-gcc-dwarf4": "elf/c_gcc_O2_dwarf4",
    "elf-aarch64-dwarf5-str-offsets": "elf/libfixture_aarch64.so",
    "elf-cpp-gcc-zlib-sections": "elf/cpp_gcc_zlib",
    "elf-stripped-dynsym": "elf/libfixture_stripped.so",
    "macho-x86_64-executable": "macho/app_x86_64",
    "macho-x86_64-dsym": "macho/app_x86_64.dSYM/Contents/Resources/DWARF/app_x86_64",
    "macho-arm64-dylib-dsym": "macho/libdylib_arm64.dylib.dSYM/Contents/Resources/DWARF/libdylib_arm64.dylib",
    "macho-fat-dsym": "macho/app_fat.dSYM/Contents/Resources/DWARF/app_fat",
}


def run(data: bytes) -> None:
    src = scratch_dir() / "object"
    out = scratch_dir() / "object.symcache"
    src.write_bytes(data)
    infos = identify(src)
    arches: list[str | None] = [None] + sorted({i.arch.value for i in infos})[:MAX_SLICES] if len(infos) > 1 else [None]
    for arch in arches:
        meta = convert_debug_file(str(src), str(out), arch)
        cache_ = SymCache.open(out)
        try:
            base = int(meta["image_vmaddr"])
            addrs = [0, 2**64 - 1, base - 1] + [base + k * LOOKUP_STEP for k in range(LOOKUPS)]
            frames = [[f.to_json() for f in cache_.lookup(a)] for a in addrs if 0 <= a < 2**64]
            orjson.dumps([meta, frames])
        finally:
            cache_.close()


def seeds() -> dict[str, bytes]:
    """The fixture binaries, and the two kinds of `SYSB` bundle uploads carry (as `test_objects.py` writes them)."""
    out = {name: (_NATIVE / rel).read_bytes() for name, rel in SEEDS.items()}
    out["sysb-source-bundle"] = _sysb({
        "files": {"files/tmp/x/hello.c": {"type": "source", "path": "/tmp/x/hello.c"}}, "arch": "x86_64",
        "code_id": "2df3514009ac97519282d0e3e8986285e197b2c0", "debug_id": "4051f32d-ac09-5197-9282-d0e3e8986285",
        "object_name": "hello"}, {"files/tmp/x/hello.c": b"int main(){}\n"})
    out["sysb-artifact-bundle"] = _sysb({
        "files": {"files/_/_/main.js": {"type": "minified_source", "url": "~/main.js",
                                        "headers": {"debug-id": "c5b7a1e2-8a5c-4a2e-9b47-1d2f3a4b5c6d"}},
                  "files/_/_/main.js.map": {"type": "source_map", "url": "~/main.js.map"}},
        "debug_id": "00000000-1111-2222-3333-444444444444", "org": "acme", "release": "1.0"},
        {"files/_/_/main.js": b"f()\n", "files/_/_/main.js.map": b'{"version":3,"mappings":"AAAA"}'})
    return out


def _sysb(manifest: dict[str, object], files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps(manifest))
        for name, data in files.items():
            z.writestr(name, data)
    return b"SYSB" + struct.pack("<I", 2) + buf.getvalue()


@cache
def _seed(name: str) -> tuple[bytes, object_layout.Layout]:
    data = seeds()[name]
    return data, object_layout.layout(data)


def _random_ops(rng: random.Random) -> list[object_layout.Op]:
    kinds = ("field", "field", "field", "region", "region", "smash", "flip", "truncate")
    return [(rng.choice(kinds), rng.getrandbits(32), rng.getrandbits(rng.choice((8, 16, 64))), rng.getrandbits(16))
            for _ in range(rng.randint(1, 4))]


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Half structured edits (header fields, DWARF unit headers, section bytes), half libFuzzer's."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        from fuzz.json_mutate import byte_mutate

        return byte_mutate(data, max_size)
    return object_layout.apply(data, _random_ops(rng))[:max_size]


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    names = sorted(seeds())
    op = st.tuples(
        st.sampled_from(["field", "field", "field", "region", "region", "smash", "flip", "truncate"]),
        st.integers(0, 2**32 - 1), st.one_of(st.integers(0, 64), st.integers(0, 2**64 - 1)),
        st.integers(0, 2**16 - 1),
    )

    def build(choice: tuple[str, list[object_layout.Op]]) -> bytes:
        data, lay = _seed(choice[0])
        return object_layout.apply(data, choice[1], lay)

    return st.tuples(st.sampled_from(names), st.lists(op, min_size=1, max_size=5)).map(build)
