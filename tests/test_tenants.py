"""Tenants: a token for one scope can neither upload into, symbolicate with, nor poll another's work.

Real service with `auth.symbolicate = "token"`; each scope uploads its own copy of a
fixture (a patched build-id, so the two files are really different objects).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.service import ServiceProcess
from tests.support.native_service import elf_info, elf_module

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/c_gcc_O2_dwarf5"
A, B = "token-for-acme", "token-for-globex"


@pytest.fixture
def svc(service_factory: Any, tmp_path: Path) -> ServiceProcess:
    return service_factory({  # type: ignore[no-any-return]
        "storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
        "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"symbolicate": "token", "tokens": {A: {"scopes": ["acme/*"]}, B: {"scopes": ["globex/*"]}}},
        "workers": 1,
    })


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_scopes_are_walled_off(svc: ServiceProcess) -> None:
    upload = f"{svc.url}/api/0/projects/globex/app/files/dsyms/"
    r = requests.post(upload, files={"file": ("x", ELF.read_bytes())}, headers=auth(A), timeout=30)
    assert r.status_code == 403, "acme's token must not upload into globex"
    r = requests.post(upload, files={"file": ("x", ELF.read_bytes())}, headers=auth(B), timeout=30)
    assert r.status_code == 201, r.text

    start, _ = elf_info(ELF)["text"]
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(0x10000 + start), "adjust_instruction_addr": False}]}],
            "modules": [elf_module(ELF, image_addr=0x10000)]}
    r = requests.post(f"{svc.url}/symbolicate", params={"scope": "globex/app"}, json=body, headers=auth(A), timeout=30)
    assert r.status_code == 403, "acme's token must not symbolicate in globex"
    r = requests.post(f"{svc.url}/symbolicate", params={"scope": "globex/app"}, json=body, timeout=30)
    assert r.status_code == 401
    own = requests.post(f"{svc.url}/symbolicate", params={"scope": "acme/web"}, json=body, headers=auth(A), timeout=30)
    assert own.status_code == 200 and own.json()["modules"][0]["debug_status"] == "missing", \
        "acme must not see globex's upload"
    theirs = requests.post(f"{svc.url}/symbolicate", params={"scope": "globex/app"}, json=body, headers=auth(B),
                           timeout=30)
    assert theirs.json()["modules"][0]["debug_status"] == "found"

    pending = requests.post(f"{svc.url}/symbolicate", params={"scope": "globex/app", "timeout": "0"}, json=body,
                            headers=auth(B), timeout=30).json()
    assert pending["status"] == "pending", "timeout=0 answers before the job has even started"
    rid = pending["request_id"]
    r = requests.get(f"{svc.url}/requests/{rid}", params={"scope": "acme/web"}, headers=auth(A), timeout=30)
    assert r.status_code == 404, "a request id must not be readable from another scope"
    r = requests.get(f"{svc.url}/requests/{rid}", params={"scope": "globex/app"}, headers=auth(A), timeout=30)
    assert r.status_code == 403
    done = requests.get(f"{svc.url}/requests/{rid}", params={"scope": "globex/app", "timeout": "30"},
                        headers=auth(B), timeout=60).json()
    assert done["status"] == "completed" and done["modules"][0]["debug_status"] == "found"
