"""`minidump`: an uploaded minidump through the reader and the stack walker, and unwind tables
through the CFI decoder and cache.

An input that starts with `MDMP` is a dump: `parse_minidump`, then every thread walked with
the CFI caches of the fixture binaries (CFI, frame pointers and scanning all run on whatever
the edited stack memory holds), then `describe`'s JSON. One that starts with `CU64` / `CUA6`
is a Mach-O `__unwind_info` section (x86_64 / arm64): compact unwind entries and rules
(`compact_unwind.fdes`), `CacheBuilder`, `CfiCache` and lookups. One that starts with `PE64`
is an x64 PE image: `read_pe`, its exception directory's unwind tables (`pe_unwind.fdes`, chains
and unwind codes), a `SPARSE` cache and lookups. Any other input is the bytes of an `.eh_frame`
section: `iter_fdes`, `CacheBuilder`, `CfiCache` and lookups. The Windows dump seed walks with
the fixture DLL's and exe's PE unwind rows and their PDBs' code maps.

Hypothesis edits the small Crashpad fixture dumps and a wine-written Windows dump structurally
(the header, the stream directory, the thread / module / memory records set to edge values,
stack words replaced by pointers into the modules, truncation), the fixture `.eh_frame`
sections bytewise and the PE image's `.pdata` and unwind infos (`.rdata`) bytewise; atheris
mutates the same seeds with libFuzzer's mutations.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from symbolicator.native.cfi import compact_unwind, pe_unwind
from symbolicator.native.cfi.build import build, build_from_elf
from symbolicator.native.cfi.cache import SPARSE, CacheBuilder, CfiCache
from symbolicator.native.cfi.dwarf_cfi import iter_fdes
from symbolicator.native.minidump.reader import parse_minidump
from symbolicator.native.minidump.walker import Stack, Walker, WalkModule
from symbolicator.native.pe.headers import read_pe, rva_reader
from symbolicator.types import Arch

if TYPE_CHECKING:
    from hypothesis import strategies as st

_MD = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "minidump"
_WIN = _MD.parent / "minidump_windows" / "out"
_SEED_DUMPS = ("segv-worker", "abort-main", "fpe-worker")
_BINARIES = ("crasher", "libcrashlib.so")
_PE_IMAGES = ("crasher.exe", "crashlib.dll")
MAX_FRAMES = 2048


@lru_cache(maxsize=1)
def _caches() -> dict[str, CfiCache]:
    out = {name: CfiCache(build_from_elf(_MD / "out" / name)[0]) for name in _BINARIES}
    out.update({name: CfiCache(build(_WIN / name)[0]) for name in _PE_IMAGES})
    return out


@lru_cache(maxsize=1)
def _code_maps() -> dict[str, CfiCache]:
    return {name: CfiCache(build(_WIN / name.replace(".exe", ".pdb").replace(".dll", ".pdb"))[0])
            for name in _PE_IMAGES}


def _code_check(cache: CfiCache | None) -> Callable[[int], bool] | None:
    return None if cache is None else cache.covers


def run(data: bytes) -> None:
    if data[:4] == b"MDMP":
        dump = parse_minidump(data)
        caches, code_maps = _caches(), _code_maps()
        names = [m.code_file.replace("\\", "/").rsplit("/", 1)[-1] for m in dump.modules]
        walker = Walker(dump.arch, [WalkModule(m.base, m.size, caches.get(name), _code_check(code_maps.get(name)))
                                    for m, name in zip(dump.modules, names, strict=True)], max_frames=MAX_FRAMES)
        for thread in dump.threads:
            stack = Stack(thread.stack_start, dump.memory.read(thread.stack_start, thread.stack_size) or b"")
            walker.walk(thread.registers, stack)
        if dump.exception is not None:
            walker.walk(dump.exception.registers, Stack(0, b""))
        _ = dump.crash_reason, dump.crash_address, [str(m.debug_id) for m in dump.modules]
        return
    if data[:4] == b"PE64":
        image = data[4:]
        pe = read_pe(image)
        fdes = pe_unwind.fdes(rva_reader(image, pe), pe.exception_dir, pe.image_base)
        cache = CfiCache(CacheBuilder().add_all(fdes).build(Arch.X86_64, pe.image_base, SPARSE)[0])
        for addr in range(pe.image_base, pe.image_base + 0x3000, 7):
            cache.lookup(addr)
            cache.covers(addr)
        return
    if data[:4] in _COMPACT_TAGS:
        arch = _COMPACT_TAGS[data[:4]]
        fdes = compact_unwind.fdes(data[4:], arch, 0, lambda addr: (addr * 2654435761) & 0xFFFFFFFF, dict)
        cache = CfiCache(CacheBuilder().add_all(fdes).build(arch, 0)[0])
    else:
        cache = CfiCache(CacheBuilder().add_all(iter_fdes(data, 0x1000, eh_frame=True)).build(Arch.X86_64, 0)[0])
    for addr in range(0, 0x3000, 7):
        cache.lookup(addr)


_COMPACT_TAGS = {b"CU64": Arch.X86_64, b"CUA6": Arch.ARM64}
_COMPACT = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "compact_unwind" / "out"


def _unwind_info(name: str, arch: Arch) -> bytes:
    from symbolicator.native.dwarf.macho import open_slice

    image, _ = open_slice(_COMPACT / name, arch)
    sl = image.slice
    s = next(s for s in sl.sections if s.sectname == "__unwind_info")
    return bytes(image.data[sl.offset + s.offset:sl.offset + s.offset + s.size])


def _eh_frame(name: str) -> bytes:
    from elftools.elf.elffile import ELFFile

    with open(_MD / "out" / name, "rb") as f:
        return bytes(ELFFile(f).get_section_by_name(".eh_frame").data())


def seeds() -> dict[str, bytes]:
    out = {f"{name}.dmp": (_MD / "dumps" / f"{name}.dmp").read_bytes() for name in _SEED_DUMPS}
    out["windows-worker.dmp"] = (_WIN.parent / "dumps" / "worker.dmp").read_bytes()
    out["crashlib.dll.pe"] = b"PE64" + (_WIN / "crashlib.dll").read_bytes()
    out.update({f"{name}.eh_frame": _eh_frame(name) for name in _BINARIES})
    out.update({f"{name}.unwind_info": tag + _unwind_info(name, arch) for tag, name, arch in (
        (b"CU64", "libcu_nofp_x86_64.dylib", Arch.X86_64), (b"CUA6", "libcu_arm64.dylib", Arch.ARM64))})
    return out


def _edit(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    """Each edit (where, kind, value): kind 0 overwrites a u32 of the directory or a record,
    1 a u64 anywhere (a stack word), 2 cuts the input."""
    out = bytearray(data)
    count, dir_rva = struct.unpack_from("<II", out, 8) if len(out) >= 16 else (0, 0)
    for where, kind, value in edits:
        if not out:
            break
        if kind == 0:
            span = 12 * count if count and dir_rva + 12 * count <= len(out) else len(out)
            at = (dir_rva + where % max(span, 1)) if span != len(out) else where % len(out)
            at = min(at - at % 4, len(out) - 4) if len(out) >= 4 else 0
            if len(out) >= 4:
                struct.pack_into("<I", out, at, value & 0xFFFFFFFF)
                # the record the directory entry points at, too
                if span != len(out) and (at - dir_rva) % 12 == 8 and value < len(out) - 4:
                    struct.pack_into("<I", out, value - value % 4, (value * 2654435761) & 0xFFFFFFFF)
        elif kind == 1 and len(out) >= 8:
            at = where % (len(out) - 7)
            struct.pack_into("<Q", out, at, value & 0xFFFFFFFFFFFFFFFF)
        else:
            del out[where % (len(out) + 1):]
    return bytes(out)


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    from fuzz.edges import EDGE_INTS

    corpus = seeds()
    dumps = sorted(n for n in corpus if n.endswith(".dmp"))
    frames = sorted(n for n in corpus if n.endswith((".eh_frame", ".unwind_info")))
    pe = corpus["crashlib.dll.pe"]
    pointers = st.sampled_from([0x5575DAA9D3C6, 0x7FF1E981D16D, 0x7FFCE87CEF50, 0x1000, 0xFFFFFFFFFFFFFFF8])
    value = st.one_of(st.sampled_from(EDGE_INTS).map(lambda v: v & 0xFFFFFFFFFFFFFFFF), st.integers(0, 2**64 - 1),
                      st.integers(0, 4096), pointers)
    edit = st.tuples(st.integers(0, 2**20), st.integers(0, 2), value)
    dump = st.tuples(st.sampled_from(dumps), st.lists(edit, min_size=1, max_size=12)).map(
        lambda c: _edit(corpus[c[0]], c[1]))
    flips = st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), min_size=1, max_size=16)

    def flip(choice: tuple[str, list[tuple[int, int]]]) -> bytes:
        out = bytearray(corpus[choice[0]])
        for where, byte in choice[1]:
            out[where % len(out)] = byte
        return bytes(out)

    return st.one_of(dump, st.tuples(st.sampled_from(frames), flips).map(flip),
                     st.binary(max_size=512).map(lambda b: b"MDMP\x93\xa7\0\0" + b),
                     flips.map(lambda edits: _edit_unwind_tables(pe, edits)))


def _edit_unwind_tables(seed: bytes, edits: list[tuple[int, int]]) -> bytes:
    """Byte flips inside the image's `.pdata` and `.rdata` (where lld puts the unwind infos)."""
    pe = read_pe(seed[4:])
    sections = [s for s in (pe.section(".pdata"), pe.section(".rdata")) if s is not None and s.file_size]
    out = bytearray(seed)
    for where, byte in edits:
        s = sections[where % len(sections)]
        out[4 + s.file_offset + where % s.file_size] = byte
    return bytes(out)
