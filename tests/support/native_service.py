"""The native service as the tests drive it: fixture paths, settings, upload and symbolicate
calls, metrics, and the llvm-symbolizer oracle with its normalisation. Shared by every test
module that runs native symbolication against the real service."""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from elftools.elf.elffile import ELFFile

from tests.support.service import ServiceProcess, local_settings, merged

REPO = Path(__file__).resolve().parents[2]
NATIVE = REPO / "tests/fixtures/native/out"
ELF = NATIVE / "elf"
TOKEN = "native-test-token"
SCOPE = "acme/web"
IMAGE_ADDR = 0x5555_5555_4000
LLVM_SYMBOLIZER = shutil.which("llvm-symbolizer") or shutil.which("llvm-symbolizer-14")

needs_llvm = pytest.mark.skipif(LLVM_SYMBOLIZER is None, reason="llvm-symbolizer is not installed")


# ---------------------------------------------------------------- shared helpers

def native_settings(root: Path, **extra: Any) -> dict[str, Any]:
    base = local_settings(root, auth={"tokens": {TOKEN: {"scopes": [SCOPE], "rights": ["upload", "symbolicate"]}}},
                          scope_aliases={"42": SCOPE})
    return merged(base, extra)


def start_service(root: Path, **extra: Any) -> ServiceProcess:
    root.mkdir(parents=True, exist_ok=True)
    return ServiceProcess(root, native_settings(root, **extra)).start()


def upload(svc: ServiceProcess, path: Path, data: bytes | None = None) -> list[dict[str, Any]]:
    """Upload one debug file through the single-request upload endpoint."""
    body = data if data is not None else path.read_bytes()
    r = requests.post(f"{svc.url}/api/0/projects/acme/web/files/dsyms/", files={"file": (path.name, body)},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def symbolicate(svc: ServiceProcess, body: Any, scope: str | None = SCOPE, **params: Any) -> requests.Response:
    query = {**({"scope": scope} if scope else {}), **params}
    kwargs = {"data": body} if isinstance(body, (bytes, str)) else {"json": body}
    return requests.post(f"{svc.url}/symbolicate", params=query, timeout=60, **kwargs)  # type: ignore[arg-type]


def metric(svc: ServiceProcess, name: str) -> float:
    text = requests.get(f"{svc.url}/metrics", timeout=10).text
    m = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.MULTILINE)
    return float(m.group(1)) if m else 0.0


def elf_info(path: Path) -> dict[str, Any]:
    """Build-id, lowest PT_LOAD address and executable range, read with pyelftools (not our code)."""
    with open(path, "rb") as f:
        elf = ELFFile(f)
        note = elf.get_section_by_name(".note.gnu.build-id")
        build_id = next(n for n in note.iter_notes() if n["n_type"] == "NT_GNU_BUILD_ID")["n_desc"]
        vmaddr = min(s["p_vaddr"] for s in elf.iter_segments() if s["p_type"] == "PT_LOAD")
        text = elf.get_section_by_name(".text")
        return {"build_id": build_id, "vmaddr": vmaddr, "text": (text["sh_addr"], text["sh_addr"] + text["sh_size"])}


def elf_module(path: Path, image_addr: int = IMAGE_ADDR, **extra: Any) -> dict[str, Any]:
    info = elf_info(path)
    return {"type": "elf", "code_id": info["build_id"], "debug_id": elf_debug_id(info["build_id"]),
            "code_file": f"/usr/bin/{path.name}", "image_addr": hex(image_addr), "image_size": 0x100000, **extra}


def elf_debug_id(build_id_hex: str) -> str:
    """Symbolicator's ELF debug id: the first 16 build-id bytes as a little-endian GUID."""
    import uuid

    raw = bytes.fromhex(build_id_hex)[:16].ljust(16, b"\0")
    return str(uuid.UUID(bytes_le=raw))


def llvm_symbolize(obj: Path, addrs: list[int]) -> list[list[dict[str, Any]]]:
    """`llvm-symbolizer --inlining` frames per file address, innermost first, normalised."""
    assert LLVM_SYMBOLIZER is not None
    out = subprocess.run([LLVM_SYMBOLIZER, "--output-style=JSON", "--inlining", f"--obj={obj}"],
                         input="\n".join(hex(a) for a in addrs), capture_output=True, text=True, check=True).stdout
    answers = [json.loads(line) for line in out.splitlines() if line.strip()]
    return [[{"function": norm_function(s["FunctionName"].replace("??", "")),
              "abs_path": _norm_path(s["FileName"].replace("??", "")), "lineno": s["Line"] or None}
             for s in a["Symbol"] if s["FunctionName"] not in ("??", "") or s["FileName"] not in ("??", "")]
            for a in answers]


_CLOSE_TEMPLATES = re.compile(r">\s+(?=>)")
_RUST_HASH = re.compile(r"::h[0-9a-f]{16}$")
_RUST_ESCAPES = {"$SP$": "@", "$BP$": "*", "$RF$": "&", "$LT$": "<", "$GT$": ">", "$LP$": "(", "$RP$": ")",
                 "$C$": ",", "$u7e$": "~", "$u20$": " ", "$u27$": "'", "$u3d$": "=", "$u5b$": "[",
                 "$u5d$": "]", "$u7b$": "{", "$u7d$": "}", "$u3b$": ";", "$u2b$": "+", "$u22$": '"', "..": "::"}
_RUST_ESCAPE = re.compile(r"\$(SP|BP|RF|LT|GT|LP|RP|C|u7e|u20|u27|u3d|u5b|u5d|u7b|u7d|u3b|u2b|u22)\$")


def normalize_rust(name: str) -> str:
    """A name llvm-symbolizer printed with Rust's legacy escapes and hash suffix, as our demangler prints it."""
    name = _RUST_HASH.sub("", name)
    if "$" in name:
        name = re.sub(r"(^|::)_\$", r"\1$", name)
        name = _RUST_ESCAPE.sub(lambda m: _RUST_ESCAPES["$" + m.group(1) + "$"], name)
        name = name.replace("..", "::")
    return name


def norm_function(name: str) -> str:
    """docs/cli.md's comparison, plus `> >` → `>>` (LLVM 14's demangler spaces closing brackets, pydemumble
    does not)."""
    return _CLOSE_TEMPLATES.sub(">", normalize_rust(name))


def _norm_path(path: str) -> str | None:
    return posixpath.normpath(path) if path else None


def ours(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The comparable part of our frames for one `original_index`."""
    return [{"function": norm_function(f.get("function") or ""), "abs_path": _norm_path(f.get("abs_path") or ""),
             "lineno": f.get("lineno")} for f in frames if f["status"] == "symbolicated"]


def by_original_index(frames: list[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for f in frames:
        out.setdefault(f["original_index"], []).append(f)
    return out


# ---------------------------------------------------------------- the service under test

def sample_addresses(path: Path, limit: int) -> list[int]:
    """Every instruction-ish address of `.text` at a fixed stride: deterministic, ≤ `limit`."""
    lo, hi = elf_info(path)["text"]
    stride = max(1, (hi - lo) // limit)
    return list(range(lo, hi, stride))[:limit]
