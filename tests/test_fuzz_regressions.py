"""Every input the fuzzers (`python -m fuzz`, see `fuzz/README.md`) found breaking the contract.

Each crash is kept minimised, inline (or under `tests/fixtures/fuzz/` when it is a binary), and
checked twice: at the engine's own entry point, for the precise typed error the fix raises, and
through the fuzz target it was found with (`fuzz.contract.check`), so the whole path the service
takes — model, symbolication, serialisation — keeps the contract too.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from fuzz.contract import check
from fuzz.targets import TARGETS
from symbolicator.errors import InvalidShape, MalformedObject, MalformedSourceMap
from symbolicator.native.objects import identify
from symbolicator.native.symcache import SymCache
from symbolicator.native.symcache_build import build
from symbolicator.service.native import NativeRequest
from symbolicator.sourcemaps.sourcemap import parse

NATIVE = Path(__file__).parent / "fixtures" / "native" / "out"


def replay(target: str, data: bytes) -> None:
    """The input through its fuzz target: returns, or raises `Violation` with the cause."""
    check(TARGETS[target].load().run, data)


@pytest.mark.parametrize("value", [1.5, [1], {"x": 1}, None, 2**64, -1])
def test_register_of_the_wrong_type_or_range_is_invalid_shape(value: Any) -> None:
    """Found by atheris on `requests`: a register holding a list reached `str.strip` (AttributeError, a 500)."""
    body = {"stacktraces": [{"registers": {"pc": value}, "frames": [{"instruction_addr": "0x1000"}]}]}
    with pytest.raises(InvalidShape, match="register 'pc'"):
        NativeRequest.from_json(body)
    replay("requests", json.dumps(body).encode())


@pytest.mark.parametrize("offset", [{"line": 0, "column": 2**63}, {"line": 2**63, "column": 0},
                                    {"line": 2**31, "column": 0}])
def test_index_map_offset_past_int32_is_malformed(offset: dict[str, int]) -> None:
    """Found by atheris on `sourcemap`: an offset of 2^63 overflowed NumPy's int64 (OverflowError)."""
    data = json.dumps({"version": 3, "sections": [
        {"offset": offset, "map": {"version": 3, "mappings": "AAAA", "sources": ["a.js"]}}]}).encode()
    with pytest.raises(MalformedSourceMap, match="below 2\\^31"):
        parse(data)
    replay("sourcemap", data)


def _with_section_field(data: bytes, sh_type: int, field_offset: int, value: int) -> bytes:
    """A 64-bit little-endian ELF with one field of every section header of type `sh_type` replaced."""
    out = bytearray(data)
    (shoff,) = struct.unpack_from("<Q", out, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", out, 0x3A)
    for at in range(shoff, shoff + shnum * shentsize, shentsize):
        if struct.unpack_from("<I", out, at + 4)[0] == sh_type:
            struct.pack_into("<I", out, at + field_offset, value)
    return bytes(out)


def test_dynamic_section_not_linked_to_a_string_table_is_malformed(tmp_path: Path) -> None:
    """Found by hypothesis on `objects`: `.dynamic` (SHT_DYNAMIC) with `sh_link` 0 made pyelftools
    `assert` while reading DT_SONAME (AssertionError out of `identify`, a 500 on upload)."""
    data = _with_section_field((NATIVE / "elf" / "libfixture_aarch64.so").read_bytes(), 6, 40, 0)
    path = tmp_path / "lib.so"
    path.write_bytes(data)
    with pytest.raises(MalformedObject, match="not a string table"):
        identify(path)
    replay("objects", data)


def _with_text_section_size(data: bytes, size: int) -> bytes:
    """A 64-bit little-endian Mach-O whose `__TEXT` segment's first section claims `size` bytes."""
    out = bytearray(data)
    (ncmds,) = struct.unpack_from("<I", out, 16)
    at = 32
    for _ in range(ncmds):
        cmd, cmdsize = struct.unpack_from("<II", out, at)
        if cmd == 0x19 and out[at + 8:at + 24].rstrip(b"\0") == b"__TEXT":
            struct.pack_into("<Q", out, at + 72 + 40, size)  # section_64 follows segment_command_64
        at += cmdsize
    return bytes(out)


def test_symbol_reaching_the_end_of_the_address_space_is_cut_there(tmp_path: Path) -> None:
    """Found by hypothesis on `objects`: a dSYM whose `__TEXT,__text` claims 2^64 - 2^14 bytes gave its
    last (size-less) symbol the end 2^64, which no u64 holds (OverflowError building the symcache).
    Symbol ends are cut at 2^64 - 1, as DWARF ranges are; the file still converts and answers."""
    dsym = NATIVE / "macho" / "libdylib_arm64.dylib.dSYM" / "Contents" / "Resources" / "DWARF" / "libdylib_arm64.dylib"
    data = _with_text_section_size(dsym.read_bytes(), 2**64 - 2**14)
    path = tmp_path / "libdylib_arm64.dylib"
    path.write_bytes(data)
    symcache = SymCache.from_bytes(build(path))
    far = symcache.lookup(2**64 - 2)
    assert far and far[0].function == "dylib_inner"
    replay("objects", data)


def test_cache_answers_the_last_32_bit_column_like_the_map() -> None:
    """Found by the `sourcemap` target's differential check: column 2^32 (1-based) fits the keys."""
    from symbolicator.sourcemaps.smcache import SmCache, build_from_map

    sm = parse((Path(__file__).parent / "fixtures" / "js" / "out" / "esbuild" / "app.js.map").read_bytes())
    cache = SmCache.from_bytes(build_from_map(sm))
    assert cache.lookup(1, 2**32) == sm.lookup(1, 2**32) is not None
    assert cache.lookup(1, 2**32 + 1) is None


def test_mapping_line_number_past_32_bits_is_skipped() -> None:
    """Found by hypothesis on `proguard`: `1:99999999999:…` stopped the cache build with struct.error."""
    from symbolicator.proguard import load

    data = b"a.A -> a:\n    1:99999999999:void f() -> a\n    2:3:void g() -> a\n"
    assert [m.name for m in load(data).members("a.A", "a")] == ["g"]
    replay("proguard", data)


def test_mapping_cr_inside_a_line_splits_it_for_scan_and_parse_alike() -> None:
    """Found by atheris on `proguard` (differential): a CR inside a `\\n`-ended line made the upload's
    `scan` count one class fewer than `parse`; both split lines as Java's readLine now."""
    import io

    from symbolicator.proguard.mapping import parse, scan

    data = b"a.A -> a:\n    1:1:void f() -> a\r\x00:\n"  # `\x00:` is a line of its own, and no class line
    assert scan(io.BytesIO(data)).classes == len(parse(data).classes) == 1
    replay("proguard", data)
