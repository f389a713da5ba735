"""`wasm`: a WebAssembly module through identification, the symcache conversion, lookups and V8 frames.

An input is the module's bytes. It goes through what an upload, a `/symbolicate` with a
`type: "wasm"` module and `symbolicate trace.txt` do with it: `objects.identify`, the worker's
`native_modules.convert_debug_file` (section walk, DWARF → symcache in module offsets),
`SymCache.open` and lookups across the code section, and `frames_fit` against V8 frames. The
contract: every input returns or raises a typed error (`MalformedObject` / `UnsupportedFormat`).

Seeds: the fixture's debug files (DWARF 4 and 5, `name`, `build_id`) and deployed module
(`external_debug_info`), and a hand-assembled module with every import kind (function, table,
memory64 limits, global, tag), which the C fixture has none of. The structured mutator edits
at section granularity: a section's size LEB, id or custom name, bytes inside one section's
payload, a dropped or repeated section, truncation.
"""

from __future__ import annotations

import random
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from fuzz.scratch import scratch_dir
from symbolicator.errors import FormatError
from symbolicator.native.objects import identify
from symbolicator.native.symcache import SymCache
from symbolicator.native.wasm.module import read_module
from symbolicator.native.wasm.trace import WasmFrame, frames_fit
from symbolicator.service.native.modules import convert_debug_file

if TYPE_CHECKING:
    from hypothesis import strategies as st

LOOKUPS = 512
_WASM = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "wasm" / "out"
Op = tuple[str, int, int]


def run(data: bytes) -> None:
    src = scratch_dir() / "module.wasm"
    out = scratch_dir() / "module.symcache"
    src.write_bytes(data)
    identify(src)
    meta = convert_debug_file(str(src), str(out), None)
    cache_ = SymCache.open(out)
    try:
        frames = [[f.to_json() for f in cache_.lookup(a)] for a in [*range(min(len(data), LOOKUPS)), 2**64 - 1]]
        orjson.dumps([meta, frames])
    finally:
        cache_.close()
    try:
        module = read_module(data, bodies=True, names=True)
    except FormatError:
        return
    guesses = [WasmFrame(0, name, "wasm://wasm/0", index, off)
               for index, name in list(module.function_names.items())[:8] for off in (0, len(data) // 2)]
    frames_fit(module, guesses)


def _leb(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _section(sid: int, payload: bytes) -> bytes:
    return bytes([sid]) + _leb(len(payload)) + payload


def _name(s: str) -> bytes:
    return _leb(len(s)) + s.encode()


def imports_module() -> bytes:
    """A valid module with one import of each kind, two defined functions and a `name` section."""
    types = _section(1, b"\x01\x60\x00\x00")
    imports = _section(2, _leb(5) + _name("env") + _name("f") + b"\x00\x00"
                       + _name("env") + _name("t") + b"\x01\x70\x00\x01"
                       + _name("env") + _name("m") + b"\x02\x05\x01\x02"
                       + _name("env") + _name("g") + b"\x03\x7f\x00"
                       + _name("env") + _name("e") + b"\x04\x00\x00")
    functions = _section(3, b"\x02\x00\x00")
    code = _section(10, b"\x02" + b"\x04\x00\x10\x00\x0b" + b"\x02\x00\x0b")
    function_names = b"\x03\x00" + _name("f") + b"\x01" + _name("a") + b"\x02" + _name("b")
    names = _section(0, _name("name") + b"\x01" + _leb(len(function_names)) + function_names)
    build_id = _section(0, _name("build_id") + bytes(range(16)))
    return b"\0asm\x01\x00\x00\x00" + types + imports + functions + code + names + build_id


def seeds() -> dict[str, bytes]:
    return {"wasm-debug-file": (_WASM / "app.debug.wasm").read_bytes(),
            "wasm-dwarf5-debug-file": (_WASM / "app-dwarf5.debug.wasm").read_bytes(),
            "wasm-deployed-module": (_WASM / "app.wasm").read_bytes(),
            "wasm-every-import-kind": imports_module()}


@cache
def _sections(data: bytes) -> list[tuple[int, int]]:
    """[header start, payload end) of each section of a seed."""
    module = read_module(data)
    out = []
    pos = 8
    for s in module.sections:
        out.append((pos, s.end))
        pos = s.end
    return out


def apply(data: bytes, ops: list[Op]) -> bytes:
    """Section-level edits: `size` (a new size LEB), `id`, `payload` (byte in one section), `drop`,
    `repeat`, `truncate`."""
    buf = bytearray(data)
    for kind, where, value in ops:
        try:
            sections = _sections(bytes(buf))
        except FormatError:
            sections = []
        if kind == "truncate" or not sections:
            buf = buf[:where % (len(buf) + 1)]
            continue
        start, end = sections[where % len(sections)]
        if kind == "size":
            size_len = next((i for i in range(5) if not buf[start + 1 + i] & 0x80), 4) + 1
            buf[start + 1:start + 1 + size_len] = _leb(value % (1 << 32))
        elif kind == "id":
            buf[start] = value & 0xFF
        elif kind == "payload" and end > start + 2:
            buf[start + 2 + value % (end - start - 2)] = (value >> 8) & 0xFF
        elif kind == "drop":
            del buf[start:end]
        elif kind == "repeat":
            buf[end:end] = buf[start:end]
    return bytes(buf)


KINDS = ("size", "id", "payload", "payload", "payload", "drop", "repeat", "truncate")


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """Half section-level edits, half libFuzzer's byte mutations."""
    rng = random.Random(seed)
    if rng.random() < 0.5:
        from fuzz.json_mutate import byte_mutate

        return byte_mutate(data, max_size)
    ops = [(rng.choice(KINDS), rng.getrandbits(16), rng.getrandbits(rng.choice((8, 16, 32)))) for _ in range(3)]
    return apply(data, ops)[:max_size]


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    seed_bytes = seeds()
    op = st.tuples(st.sampled_from(KINDS), st.integers(0, 2**16 - 1),
                   st.one_of(st.integers(0, 255), st.integers(0, 2**32 - 1)))
    return st.tuples(st.sampled_from(sorted(seed_bytes)), st.lists(op, min_size=1, max_size=4)).map(
        lambda c: apply(seed_bytes[c[0]], c[1]))
