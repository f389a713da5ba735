"""Independent truth for PE + PDB fixtures: llvm-objdump's instruction starts, llvm-symbolizer's frames.

llvm-symbolizer takes VAs (ImageBase + RVA) and reads the PDB next to the exe without checking
its GUID/age, so callers assert the identity first (`pdbutil_identity`). Frames are compared
as `(function, file, line)` innermost first, `??`/line 0 normalised to None as in
test_dwarf_accuracy.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

_INSN = re.compile(r"^\s*([0-9a-f]+):\s", re.M)
_SECTION = re.compile(r"^\s*\d+\s+(\S+)\s+([0-9a-f]+)\s+([0-9a-f]+)\s+TEXT", re.M)
_GUID = re.compile(r"GUID: \{([0-9A-F-]+)\}")
_AGE = re.compile(r"^\s*Age: (\d+)", re.M)
_BASE = re.compile(r"ImageBase:\s+0x([0-9A-F]+)", re.I)
Key = tuple[str | None, str | None, int | None]


def image_base(exe: Path) -> int:
    out = subprocess.run(["llvm-readobj", "--file-headers", str(exe)], capture_output=True, text=True, check=True)
    m = _BASE.search(out.stdout)
    assert m, out.stdout
    return int(m.group(1), 16)


def instruction_vas(exe: Path) -> list[int]:
    """Every instruction start llvm-objdump disassembles in the exe's code sections."""
    out = subprocess.run(["llvm-objdump", "-d", "--no-show-raw-insn", str(exe)], capture_output=True, text=True,
                         check=True)
    return sorted({int(m.group(1), 16) for m in _INSN.finditer(out.stdout)})


def pdbutil_identity(pdb: Path) -> tuple[uuid.UUID, int]:
    """(GUID, age) as `llvm-pdbutil dump --summary` prints them."""
    out = subprocess.run(["llvm-pdbutil", "dump", "--summary", str(pdb)], capture_output=True, text=True,
                         check=True)
    guid, age = _GUID.search(out.stdout), _AGE.search(out.stdout)
    assert guid and age, out.stdout
    return uuid.UUID(guid.group(1)), int(age.group(1))


def _key(function: str, file: str, line: int) -> Key:
    return (None if function in ("", "??") else function, None if file in ("", "??") else file, line or None)


def symbolize(exe: Path, vas: list[int]) -> dict[int, list[Key]]:
    """llvm-symbolizer's inline chain at each VA, innermost first ([] when it knows nothing)."""
    out = subprocess.run(["llvm-symbolizer", f"--obj={exe}", "--inlines", "--output-style=JSON"],
                         input="\n".join(hex(a) for a in vas) + "\n", capture_output=True, text=True, check=True,
                         timeout=600)
    result: dict[int, list[Key]] = {}
    for line in out.stdout.splitlines():
        doc = json.loads(line)
        frames = [_key(s["FunctionName"], s["FileName"], s["Line"]) for s in doc.get("Symbol", [])]
        result[int(doc["Address"], 16)] = [f for f in frames if f != (None, None, None)]
    return result
