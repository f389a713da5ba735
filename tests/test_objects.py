"""Object identification against real fixtures, with expectations from independent tools.

Every expected id, arch and feature comes from `tests/fixtures/native/fixtures.json`, which
`build.sh` wrote from readelf / llvm-dwarfdump / llvm-objdump output, or from lief and Sentry's
`symbolic` (when installed) read here; never from symbolicator's own code.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import struct
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from symbolicator.errors import FormatError, MalformedObject, UnsupportedFormat
from symbolicator.native.objects import (
    ObjectInfo,
    copy_slice,
    find_dsym_files,
    identify,
    is_artifact_bundle,
)
from symbolicator.types import Arch, DebugId, ObjectKind

NATIVE = Path(__file__).parent / "fixtures" / "native"
FIXTURES: list[dict[str, Any]] = json.loads((NATIVE / "fixtures.json").read_text())["fixtures"]
LLVM_DWARFDUMP = shutil.which("llvm-dwarfdump") or "/usr/lib/llvm-14/bin/llvm-dwarfdump"
OBJECT_TYPES = {"executable": "executable", "library": "library", "split_debug": "debug_companion",
                "dsym": "debug_companion"}


def fixture(name: str) -> Path:
    return NATIVE / str(next(f["path"] for f in FIXTURES if f["path"].endswith(name)))


@pytest.mark.parametrize("fx", FIXTURES, ids=[f["path"].removeprefix("out/") for f in FIXTURES])
def test_fixture_matches_independent_tools(fx: dict[str, Any]) -> None:
    infos = identify(NATIVE / fx["path"])
    assert len(infos) == len(fx["objects"])
    for info, want in zip(infos, fx["objects"]):
        assert info.arch == Arch(want["arch"])
        assert (str(info.code_id) if info.code_id else None) == want["code_id"]
        assert info.object_type == OBJECT_TYPES[fx["kind"]]
        if fx["format"] == "elf":
            assert info.file_format == "elf" and not info.fat
            assert (info.offset, info.size) == (0, fx["size"])
            features = (fx["has_debug_info"], fx["has_symtab"] or fx["has_dynsym"], fx["has_unwind_info"])
            assert info.debug_link == fx["debug_link"]
        else:
            assert info.file_format == "macho" and info.fat == (fx["format"] == "fat")
            assert info.debug_id == DebugId.parse(want["uuid"])
            assert info.object_type == {"EXECUTE": "executable", "DYLIB": "library", "DSYM": "debug_companion"}[
                want["filetype"]]
            if info.fat:
                assert (info.offset, info.size) == (want["offset"], want["size"])
            features = (want["has_debug_info"], want["has_symtab"], want["has_unwind_info"])
        assert (info.features.has_debug_info, info.features.has_symbols, info.features.has_unwind_info) == features
        assert not info.features.has_sources
        assert info.object_kind == (ObjectKind.DEBUGINFO if features[0] else ObjectKind.EXECUTABLE)
        assert info.object_name == (fx.get("object_name") if fx["format"] == "elf" else want.get("object_name"))


@pytest.mark.parametrize("fx", [f for f in FIXTURES if f["format"] == "elf" and f["objects"][0]["code_id"]],
                         ids=lambda f: f["path"].removeprefix("out/"))
def test_elf_debug_id_is_the_swapped_build_id(fx: dict[str, Any]) -> None:
    build_id = bytes.fromhex(fx["objects"][0]["code_id"])
    swapped = build_id[3::-1] + build_id[5:3:-1] + build_id[7:5:-1] + build_id[8:16]
    (info,) = identify(NATIVE / fx["path"])
    assert info.debug_id is not None and info.debug_id.uuid.bytes == swapped


def test_documented_debug_id_derivation() -> None:
    """reference/sentry-cli-protocol.md §1: what `sentry-cli debug-files check` printed."""
    build_id = bytes.fromhex("2df3514009ac97519282d0e3e8986285e197b2c0")
    assert str(DebugId.from_elf_build_id(build_id)) == "4051f32d-ac09-5197-9282-d0e3e8986285"


def test_elf_without_build_id_hashes_text() -> None:
    (info,) = identify(fixture("c_gcc_no_build_id"))
    assert info.code_id is None
    text = subprocess.run(["objcopy", "-O", "binary", "--only-section=.text", str(fixture("c_gcc_no_build_id")),
                           "/dev/stdout"], check=True, capture_output=True).stdout
    digest = bytearray(16)
    for i, b in enumerate(text[:4096]):
        digest[i % 16] ^= b
    assert info.debug_id == DebugId.from_elf_build_id(bytes(digest))


def test_agrees_with_sentry_symbolic() -> None:
    symbolic = pytest.importorskip("symbolic")
    for fx in FIXTURES:
        theirs = list(symbolic.Archive.open(str(NATIVE / fx["path"])).iter_objects())
        ours = identify(NATIVE / fx["path"])
        assert [(str(o.debug_id), o.code_id, o.arch) for o in theirs] == [
            (str(i.debug_id), str(i.code_id) if i.code_id else None, i.arch.value) for i in ours], fx["path"]
        for o, i in zip(theirs, ours):
            assert ("debug" in o.features, "symtab" in o.features) == (
                i.features.has_debug_info, i.features.has_symbols), fx["path"]


def test_image_vmaddr_matches_lief() -> None:
    lief = pytest.importorskip("lief")
    for name in ("c_gcc_O2_dwarf5", "libfixture.so", "macho/app_arm64", "libdylib_arm64.dylib"):
        (info,) = identify(fixture(name))
        binary = lief.parse(str(fixture(name)))
        if info.file_format == "elf":
            want = min(s.virtual_address for s in binary.segments if s.type == lief.ELF.Segment.TYPE.LOAD)
        else:
            want = binary.get_segment("__TEXT").virtual_address
        assert info.image_vmaddr == want, name


def dwarfdump_uuids(path: Path) -> list[tuple[str, str]]:
    out = subprocess.run([LLVM_DWARFDUMP, "--uuid", str(path)], check=True, capture_output=True, text=True).stdout
    return [(line.split()[1], line.split()[2].strip("()")) for line in out.splitlines()]


@pytest.mark.parametrize("name", ["macho/app_fat", "app_fat.dSYM/Contents/Resources/DWARF/app_fat"])
def test_copy_slice_extracts_thin_objects(name: str, tmp_path: Path) -> None:
    fat = fixture(name)
    infos = identify(fat)
    assert [i.arch for i in infos] == [Arch.X86_64, Arch.ARM64]
    for info in infos:
        dest = tmp_path / f"slice-{info.arch.value}"
        copy_slice(fat, info, dest)
        assert dest.stat().st_size == info.size
        (thin,) = identify(dest)
        assert (thin.arch, thin.code_id, thin.debug_id, thin.fat, thin.offset) == (
            info.arch, info.code_id, info.debug_id, False, 0)
        assert thin.object_kind == info.object_kind
        assert dwarfdump_uuids(dest) == [(str(info.debug_id).upper(), info.arch.value)]
    thin_exe = fixture("macho/app_x86_64")
    if name == "macho/app_fat":
        copy_slice(fat, infos[0], tmp_path / "x")
        assert hashlib.sha1((tmp_path / "x").read_bytes()).digest() == hashlib.sha1(thin_exe.read_bytes()).digest()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["slice-x86_64", "slice-arm64"] + (
        ["x"] if name == "macho/app_fat" else []))


def test_copy_slice_rejects_a_slice_outside_the_file(tmp_path: Path) -> None:
    (info,) = identify(fixture("macho/app_arm64"))
    bogus = ObjectInfo(**{**{f: getattr(info, f) for f in info.__dataclass_fields__}, "offset": 10**9})
    with pytest.raises(MalformedObject):
        copy_slice(fixture("macho/app_arm64"), bogus, tmp_path / "out")
    assert list(tmp_path.iterdir()) == []


def test_find_dsym_files() -> None:
    macho = NATIVE / "out" / "macho"
    found = find_dsym_files(macho)
    assert [p.relative_to(macho).as_posix() for p in found] == [
        "app_arm64.dSYM/Contents/Resources/DWARF/app_arm64",
        "app_fat.dSYM/Contents/Resources/DWARF/app_fat",
        "app_x86_64.dSYM/Contents/Resources/DWARF/app_x86_64",
        "libdylib_arm64.dylib.dSYM/Contents/Resources/DWARF/libdylib_arm64.dylib",
    ]
    assert find_dsym_files(macho / "app_fat.dSYM") == [found[1]]
    assert all(i.object_type == "debug_companion" for p in found for i in identify(p))


# --- source bundles -------------------------------------------------------------------------

def write_sysb(path: Path, manifest: dict[str, Any] | None, files: dict[str, bytes] | None = None) -> Path:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        if manifest is not None:
            z.writestr("manifest.json", json.dumps(manifest))
        for name, data in (files or {}).items():
            z.writestr(name, data)
    path.write_bytes(b"SYSB" + struct.pack("<I", 2) + buf.getvalue())
    return path


def test_source_bundle(tmp_path: Path) -> None:
    """The manifest sentry-cli 3.8 wrote for `debug-files upload --include-sources` (reference §1)."""
    manifest = {"files": {"files/tmp/x/hello.c": {"type": "source", "path": "/tmp/x/hello.c"}},
                "arch": "x86_64", "code_id": "2df3514009ac97519282d0e3e8986285e197b2c0",
                "debug_id": "4051f32d-ac09-5197-9282-d0e3e8986285", "object_name": "hello"}
    path = write_sysb(tmp_path / "hello.src.zip", manifest, {"files/tmp/x/hello.c": b"int main(){}\n"})
    (info,) = identify(path)
    assert (info.file_format, info.arch, str(info.code_id), str(info.debug_id), info.object_name) == (
        "sourcebundle", Arch.X86_64, manifest["code_id"], manifest["debug_id"], "hello")
    assert info.object_kind == ObjectKind.SOURCEBUNDLE and info.features.has_sources
    assert not info.artifact_bundle and not is_artifact_bundle(path)


def test_artifact_bundle_is_told_apart(tmp_path: Path) -> None:
    manifest = {"files": {
        "files/_/_/main.js": {"type": "minified_source", "url": "~/main.js",
                              "headers": {"debug-id": "c5b7a1e2-8a5c-4a2e-9b47-1d2f3a4b5c6d", "sourcemap": "main.js.map"}},
        "files/_/_/main.js.map": {"type": "source_map", "url": "~/main.js.map"}},
        "debug_id": "00000000-1111-2222-3333-444444444444", "org": "acme", "release": "1.0"}
    path = write_sysb(tmp_path / "bundle.zip", manifest)
    (info,) = identify(path)
    assert info.artifact_bundle and is_artifact_bundle(path)
    assert info.file_format == "sourcebundle" and info.code_id is None
    assert str(info.debug_id) == "00000000-1111-2222-3333-444444444444"
    assert not is_artifact_bundle(fixture("c_gcc_O2_dwarf5"))


@pytest.mark.parametrize("case", ["no-manifest", "not-zip", "bad-json", "bad-debug-id", "short"])
def test_broken_source_bundles(case: str, tmp_path: Path) -> None:
    path = tmp_path / "b"
    if case == "no-manifest":
        write_sysb(path, None, {"files/a.c": b"x"})
    elif case == "not-zip":
        path.write_bytes(b"SYSB\x02\0\0\0" + b"garbage" * 100)
    elif case == "bad-json":
        write_sysb(path, None, {"manifest.json": b"{nope"})
    elif case == "bad-debug-id":
        write_sysb(path, {"files": {}, "debug_id": "zz", "object_name": "x"})
    else:
        path.write_bytes(b"SYSB\x02")
    with pytest.raises(MalformedObject, match="source bundle"):
        identify(path)


# --- bad input ------------------------------------------------------------------------------

def identify_bytes(tmp_path: Path, data: bytes) -> list[ObjectInfo]:
    path = tmp_path / "input"
    path.write_bytes(data)
    return identify(path)


@pytest.mark.parametrize("name", ["c_gcc_O2_dwarf5", "libfixture_aarch64.so", "split/cpp_gcc_split.debug"])
def test_truncated_elf(name: str, tmp_path: Path) -> None:
    data = fixture(name).read_bytes()
    for cut in (4, 16, 40, 63, 64, 200, 1000, len(data) // 2, len(data) - 64, len(data) - 1):
        with pytest.raises(MalformedObject, match="truncated ELF"):
            identify_bytes(tmp_path, data[:cut])


def test_elf_with_lying_headers(tmp_path: Path) -> None:
    data = bytearray(fixture("c_gcc_O2_dwarf5").read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    lying = bytearray(data)
    struct.pack_into("<H", lying, 0x3C, 0xFFFF)
    with pytest.raises(MalformedObject, match="65535 section headers"):
        identify_bytes(tmp_path, bytes(lying))
    lying = bytearray(data)
    struct.pack_into("<Q", lying, 0x20, 2**40)
    with pytest.raises(MalformedObject, match="program headers"):
        identify_bytes(tmp_path, bytes(lying))
    lying = bytearray(data)
    struct.pack_into("<QQ", lying, shoff + 64 * 5 + 0x18, 10**6, 10**6)  # section 5: sh_offset, sh_size
    with pytest.raises(MalformedObject, match="past the file size"):
        identify_bytes(tmp_path, bytes(lying))
    lying = bytearray(data)
    lying[4] = 7
    with pytest.raises(MalformedObject, match="EI_CLASS"):
        identify_bytes(tmp_path, bytes(lying))


def test_not_a_debug_file(tmp_path: Path) -> None:
    cases = {
        b"": "empty file",
        bytes(4096): "zero bytes",
        b"hello, this is a README\n" * 10: "text 'hello, this is ",
        b"MZ\x90\x00" + bytes(100): "PE/COFF",
        b"\xca\xfe\xba\xbe\x00\x00\x00\x34" + bytes(100): "Java class",
        b"\x01\x02\x03\x04\x05" * 10: "bytes 01 02 03 04 05",
    }
    for data, message in cases.items():
        with pytest.raises(UnsupportedFormat, match=f"^not a debug file: .*{message}"):
            identify_bytes(tmp_path, data)


def test_fat_header_with_a_million_slices(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(MalformedObject, match="1000000 slices"):
        identify_bytes(tmp_path, struct.pack(">II", 0xCAFEBABE, 1_000_000) + bytes(64))
    with pytest.raises(MalformedObject, match="1000000 slices"):
        identify_bytes(tmp_path, struct.pack(">II", 0xCAFEBABF, 1_000_000) + bytes(64))
    assert time.monotonic() - start < 1


def test_fat_slice_outside_the_file(tmp_path: Path) -> None:
    data = bytearray(fixture("macho/app_fat").read_bytes())
    struct.pack_into(">I", data, 8 + 20 + 12, 10**7)  # second fat_arch: size
    with pytest.raises(MalformedObject, match="slice 1"):
        identify_bytes(tmp_path, bytes(data))


def test_macho_with_lying_load_commands(tmp_path: Path) -> None:
    data = fixture("macho/app_arm64").read_bytes()
    lying = bytearray(data)
    struct.pack_into("<I", lying, 32 + 4, 0x10000)  # load command 0: cmdsize
    with pytest.raises(MalformedObject, match="load command 0 .* runs past the end"):
        identify_bytes(tmp_path, bytes(lying))
    lying = bytearray(data)
    struct.pack_into("<I", lying, 20, 2**31)  # sizeofcmds
    with pytest.raises(MalformedObject, match="load commands"):
        identify_bytes(tmp_path, bytes(lying))
    lying = bytearray(data)
    struct.pack_into("<I", lying, 16, 10**6)  # ncmds
    with pytest.raises(MalformedObject, match="1000000 load commands"):
        identify_bytes(tmp_path, bytes(lying))
    lying = bytearray(data)
    struct.pack_into("<Q", lying, 32 + 72 + 8 + 16 + 16 + 8, 10**9)  # __TEXT (command 1) filesize
    with pytest.raises(MalformedObject, match="segment __TEXT"):
        identify_bytes(tmp_path, bytes(lying))
    for cut in (4, 20, 31, 100, 500):
        with pytest.raises(MalformedObject, match="Mach-O"):
            identify_bytes(tmp_path, data[:cut])


@pytest.mark.parametrize("name", ["c_clang_O2_dwarf5", "split/cpp_gcc_split.debug", "macho/app_fat",
                                  "libdylib_arm64.dylib.dSYM/Contents/Resources/DWARF/libdylib_arm64.dylib"])
def test_corrupted_headers_never_escape_as_other_exceptions(name: str, tmp_path: Path) -> None:
    data = fixture(name).read_bytes()
    rng = random.Random(name)
    for _ in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            pos = rng.randrange(0, min(len(data), 4096)) if rng.random() < 0.7 else rng.randrange(len(data))
            mutated[pos] = rng.randrange(256)
        try:
            identify_bytes(tmp_path, bytes(mutated))
        except FormatError:
            pass


def test_source_bundle_corruption_is_a_format_error(tmp_path: Path) -> None:
    path = write_sysb(tmp_path / "b", {"files": {"files/a.c": {"type": "source", "path": "/a.c"}},
                                       "arch": "x86_64", "debug_id": "4051f32d-ac09-5197-9282-d0e3e8986285"},
                      {"files/a.c": b"int main(void) { return 0; }\n" * 20})
    data = path.read_bytes()
    rng = random.Random(7)
    for _ in range(300):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 6)):
            mutated[rng.randrange(8, len(mutated))] = rng.randrange(256)
        try:
            identify_bytes(tmp_path, bytes(mutated))
        except FormatError:
            pass


def test_huge_sparse_file_reads_only_headers(tmp_path: Path) -> None:
    """A 3 GiB (sparse) dSYM identifies in milliseconds: only the headers are read."""
    big = tmp_path / "big"
    shutil.copyfile(fixture("app_fat.dSYM/Contents/Resources/DWARF/app_fat"), big)
    with open(big, "r+b") as f:
        f.truncate(3 << 30)
    start = time.monotonic()
    infos = identify(big)
    assert time.monotonic() - start < 0.5
    assert [i.arch for i in infos] == [Arch.X86_64, Arch.ARM64]
