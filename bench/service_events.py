"""The inputs of the service load figures: modules, events, the big debug file, and answer checks.

Everything is read with pyelftools and the standard library, never with our
engine, so the checks on the service's answers are independent of it:

- *native modules*: the bench's C++ program and four real fixtures (gcc, clang,
  Rust, a shared library), each at its own load address; build-id, debug id
  (Symbolicator's rule: the first 16 bytes as a little-endian GUID), lowest
  `PT_LOAD` address and size from the ELF headers, functions from `.symtab`.
- *native events*: one thread of 40 frames, eight per module, at return
  addresses sampled inside `.symtab` functions (`inputs._sample_addresses`);
  frame 0 is the crashing frame, so it is sent one byte earlier (the service
  looks it up as is and the others at address − 1: every lookup then falls at
  sampled − 1, inside the function). The check: the outermost frame of every
  input frame names a `.symtab` symbol covering that address.
- *JS events*: 30 frames of the bench bundle at starts of mapped segments
  (the JS bench's sampled positions), found through the release index of the
  uploaded artifact bundle. The check: every frame comes back symbolicated.
- *the big debug file*: the bench program with a new build-id and ≥ 1 GiB of
  extra non-DWARF payload (`objcopy --add-section`), so its conversion reads
  the same DWARF as the program's but the file to download is over 1 GB.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import uuid
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.inputs import REPO, _sample_addresses

FIXTURES = REPO / "tests" / "fixtures" / "native" / "out" / "elf"
OTHER_MODULES = ("cpp_gcc_O2_dwarf5", "cpp_clang_O2_dwarf5", "rust_v0", "libfixture.so")
IMAGE_BASE = 0x5555_0000_0000
IMAGE_STRIDE = 0x1000_0000
JS_FRAMES = 30
NATIVE_FRAMES = 40
SCOPE = "bench/load"
RELEASE = "bench-1.0"
JS_HOST = "http://127.0.0.1:9"  # loopback, discard port: a stray fetch could never leave the machine
MiB = 1024 * 1024


@dataclass(frozen=True)
class ElfModule:
    """A debug file as a client knows it: ids, where it is loaded, and its `.symtab` functions."""

    path: Path
    code_id: str
    debug_id: str
    image_addr: int
    image_vmaddr: int
    image_size: int
    starts: tuple[int, ...]
    functions: tuple[tuple[int, int, str], ...]

    def module_json(self) -> dict[str, Any]:
        return {"type": "elf", "code_id": self.code_id, "debug_id": self.debug_id, "code_file": str(self.path.name),
                "debug_file": str(self.path.name), "image_addr": hex(self.image_addr),
                "image_size": self.image_size}

    def names_at(self, vaddr: int) -> set[str]:
        """Every `.symtab` function name whose range covers `vaddr` (aliases share a range)."""
        i = bisect_right(self.starts, vaddr)
        return {name for start, size, name in self.functions[max(0, i - 64):i] if start <= vaddr < start + size}


def read_elf(path: Path, image_addr: int) -> ElfModule:
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import NoteSection, SymbolTableSection

    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        build_id = next(bytes.fromhex(n["n_desc"]) for s in elf.iter_sections() if isinstance(s, NoteSection)
                        for n in s.iter_notes() if n["n_type"] == "NT_GNU_BUILD_ID")
        loads = [seg for seg in elf.iter_segments() if seg["p_type"] == "PT_LOAD"]
        vmaddr = min(seg["p_vaddr"] for seg in loads)
        end = max(seg["p_vaddr"] + seg["p_memsz"] for seg in loads)
        symtab = elf.get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), f"{path}: no .symtab"
        funcs = sorted({(s["st_value"], s["st_size"], s.name) for s in symtab.iter_symbols()
                        if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 1 and s["st_value"]})
    debug_id = str(uuid.UUID(bytes_le=(build_id + bytes(16))[:16]))
    return ElfModule(path, build_id.hex(), debug_id, image_addr, vmaddr, (end - vmaddr + 0xFFF) & ~0xFFF,
                     tuple(f[0] for f in funcs), tuple(funcs))


def native_modules(program: Path) -> list[ElfModule]:
    paths = [program, *(FIXTURES / name for name in OTHER_MODULES)]
    return [read_elf(p, IMAGE_BASE + k * IMAGE_STRIDE) for k, p in enumerate(paths)]


def native_events(modules: list[ElfModule], program_addresses: list[int], n_events: int) -> list[dict[str, Any]]:
    """`n_events` distinct requests: 40 frames, eight in each module, sampled addresses in order."""
    per_module = NATIVE_FRAMES // len(modules)
    pools = [program_addresses] + [_sample_addresses(m.path, n_events * per_module) for m in modules[1:]]
    events = []
    for e in range(n_events):
        frames = []
        for j in range(NATIVE_FRAMES):
            k = j % len(modules)
            m, pool = modules[k], pools[k]
            vaddr = pool[(e * per_module + j // len(modules)) % len(pool)] - (1 if j == 0 else 0)
            frames.append({"instruction_addr": hex(m.image_addr + vaddr - m.image_vmaddr)})
        events.append({"path": f"/symbolicate?scope={SCOPE}", "body": {
            "platform": "native", "stacktraces": [{"frames": frames, "registers": {}}],
            "modules": [m.module_json() for m in modules]}})
    return events


def js_events(minified_name: str, positions: list[list[int]], n_events: int) -> list[dict[str, Any]]:
    """`n_events` requests of 30 frames each, consecutive sampled positions, caller first."""
    url = f"{JS_HOST}/static/{minified_name}"
    events = []
    for e in range(n_events):
        frames = [{"abs_path": url, "lineno": line, "colno": col, "function": "x"}
                  for line, col in (positions[(e * JS_FRAMES + j) % len(positions)] for j in range(JS_FRAMES))]
        events.append({"path": f"/symbolicate-js?scope={SCOPE}",
                       "body": {"platform": "javascript", "release": RELEASE, "stacktraces": [{"frames": frames}]}})
    return events


def slow_origin_events(base_url: str, round_: int, n: int) -> list[dict[str, Any]]:
    """`n` requests whose files exist only on the slow origin (URLs distinct within and across rounds:
    no coalescing, no cached scrape)."""
    return [{"path": f"/symbolicate-js?scope={SCOPE}",
             "body": {"platform": "javascript", "stacktraces": [{"frames": [
                 {"abs_path": f"{base_url}/slow/{round_}/{i}/app.min.js", "lineno": 1, "colno": 10}]}]}}
            for i in range(n)]


def big_file_event(big: ElfModule, addresses: list[int]) -> dict[str, Any]:
    frames = [{"instruction_addr": hex(big.image_addr + a - big.image_vmaddr)} for a in addresses[:40]]
    return {"path": f"/symbolicate?scope={SCOPE}",
            "body": {"platform": "native", "stacktraces": [{"frames": frames}], "modules": [big.module_json()]}}


def check_native(modules: list[ElfModule], event: dict[str, Any], answer: dict[str, Any]) -> tuple[int, int]:
    """(input frames, of which the outermost answer names a `.symtab` function covering the lookup address)."""
    sent = event["body"]["stacktraces"][0]["frames"]
    outermost: dict[int, dict[str, Any]] = {}
    for f in answer["stacktraces"][0]["frames"]:
        outermost[f["original_index"]] = f  # innermost first: the last one per input frame is the real function
    good = 0
    for i, frame in enumerate(sent):
        addr = int(frame["instruction_addr"], 16)
        m = next(m for m in modules if m.image_addr <= addr < m.image_addr + m.image_size)
        vaddr = addr - m.image_addr + m.image_vmaddr - (1 if i else 0)
        out = outermost.get(i, {})
        good += out.get("status") == "symbolicated" and bool(
            {out.get("symbol"), out.get("function")} & m.names_at(vaddr))
    return len(sent), good


def check_js(answer: dict[str, Any]) -> tuple[int, int]:
    """(frames, of which symbolicated)."""
    frames = [f for t in answer["stacktraces"] for f in t["frames"]]
    return len(frames), sum(bool((f.get("data") or {}).get("symbolicated")) for f in frames)


def make_big_file(program: Path, out: Path, payload_mib: int) -> Path:
    """The program + `payload_mib` MiB of random bytes in `.bench_payload`, under a new build-id.

    Kept between runs (a stamp names the program and the size): writing a GB takes a while.
    """
    stamp = out.with_suffix(".stamp.json")
    params = {"program": str(program), "mtime": program.stat().st_mtime, "mib": payload_mib, "v": 1}
    if out.exists() and stamp.exists() and json.loads(stamp.read_text()) == params:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    payload, note = out.with_suffix(".payload"), out.with_suffix(".note")
    rng = np.random.default_rng(20261121)
    with open(payload, "wb") as f:
        for _ in range(0, payload_mib, 64):
            f.write(rng.bytes(64 * MiB))
    old = subprocess.run(["objcopy", "-O", "binary", "--only-section=.note.gnu.build-id", str(program), "/dev/stdout"],
                         check=True, capture_output=True).stdout
    new_id = hashlib.sha1(b"bench big file %d" % payload_mib).digest()
    assert len(old) == 16 + 20, "expected a GNU note with a 20-byte build-id"
    note.write_bytes(old[:16] + new_id)
    subprocess.run(["objcopy", "--add-section", f".bench_payload={payload}",
                    "--set-section-flags", ".bench_payload=readonly,contents",
                    "--update-section", f".note.gnu.build-id={note}", str(program), str(out)], check=True)
    payload.unlink()
    note.unlink()
    stamp.write_text(json.dumps(params))
    return out
