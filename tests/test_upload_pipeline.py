"""Pipelined uploads (issue 11.4): the first assemble call names the chunks, which are laid out and hashed as they
arrive; on S3 they are copied into the stored object as they arrive too. Every refusal still holds.

Real service processes; a real ELF (gcc, build-id) made large with objcopy for the S3 case, where the copy is
part by part (S3's 5 MiB minimum part needs the default 8 MiB chunks).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from symbolicator import keys
from symbolicator.artifacts import indexes
from symbolicator.storage.s3 import S3Storage
from symbolicator.types import CodeId, DebugId, ObjectKind, Scope
from tests.support.service import ServiceProcess
from tests.test_uploads_bad_input import stored

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/rust_v0"  # 272,080 bytes: five 64 KiB chunks, the last short
TOKEN, GLOBEX = "pipe-acme", "pipe-globex"
SMALL = 64 * 1024


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def phase_bytes(svc: ServiceProcess, phase: str) -> float:
    text = requests.get(svc.url + "/metrics", timeout=10).text
    m = re.search(rf'^symbolicator_upload_phase_bytes_total\{{phase="{phase}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def cut(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def send(svc: ServiceProcess, pieces: list[bytes], org: str = "acme", token: str = TOKEN) -> None:
    files = [("file_gzip", (hashlib.sha1(p).hexdigest(), gzip.compress(p, 1), "application/octet-stream"))
             for p in pieces]
    r = requests.post(f"{svc.url}/api/0/organizations/{org}/chunk-upload/", files=files, headers=auth(token),
                      timeout=120)
    assert r.status_code == 200, r.text


def assemble(svc: ServiceProcess, sha1: str, names: list[str], project: str = "acme/web",
             token: str = TOKEN) -> dict[str, Any]:
    r = requests.post(f"{svc.url}/api/0/projects/{project}/files/difs/assemble/",
                      json={sha1: {"name": "app", "chunks": names}}, headers=auth(token), timeout=120)
    assert r.status_code == 200, r.text
    return dict(r.json()[sha1])


def until_done(svc: ServiceProcess, sha1: str, names: list[str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while (answer := assemble(svc, sha1, names))["state"] in ("created", "assembling"):
        assert time.monotonic() < deadline, answer
        time.sleep(0.2)
    return answer


def settings(tmp_path: Path, **limits: Any) -> dict[str, Any]:
    return {
        "storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
        "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"tokens": {TOKEN: {"scopes": ["acme/*"], "rights": ["upload"]},
                            GLOBEX: {"scopes": ["globex/*"], "rights": ["upload"]}}},
        "limits": {"chunk_size": SMALL, **limits},
    }


@pytest.fixture
def svc(service_factory: Any, tmp_path: Path) -> ServiceProcess:
    return service_factory(settings(tmp_path))  # type: ignore[no-any-return]


def test_chunks_out_of_order_are_assembled_by_the_pipeline(svc: ServiceProcess, tmp_path: Path) -> None:
    data = ELF.read_bytes()
    pieces = cut(data, SMALL)
    names = [hashlib.sha1(p).hexdigest() for p in pieces]
    sha1 = hashlib.sha1(data).hexdigest()
    assert assemble(svc, sha1, names) == {"state": "not_found", "missingChunks": names, "detail": None}
    send(svc, pieces[3:])  # the end first, then the rest, as concurrent requests may land
    send(svc, pieces[:3])
    assert until_done(svc, sha1, names)["state"] == "ok"
    assert phase_bytes(svc, "pipeline_finish") == len(data)
    assert phase_bytes(svc, "assemble_get") == 0, "nothing was read back from storage"
    [key] = stored(tmp_path, "files")
    assert (tmp_path / "uploads" / key).read_bytes() == data
    assert not list((tmp_path / "cache").rglob("pipe-*")), "the pipeline's file is gone"


def test_a_lying_checksum_is_still_refused(svc: ServiceProcess, tmp_path: Path) -> None:
    pieces = cut(ELF.read_bytes(), SMALL)
    names = [hashlib.sha1(p).hexdigest() for p in pieces]
    lie = hashlib.sha1(b"something else").hexdigest()
    assert assemble(svc, lie, names)["state"] == "not_found"
    send(svc, pieces)
    answer = until_done(svc, lie, names)
    assert answer["state"] == "error" and "checksum mismatch" in answer["detail"], answer
    assert stored(tmp_path, "files") == []


def test_chunks_cut_to_another_size_fall_back_to_the_plain_path(svc: ServiceProcess, tmp_path: Path) -> None:
    """A client that cuts 32 KiB chunks (the pipeline places chunks at index × 64 KiB) still gets its file."""
    data = ELF.read_bytes()
    pieces = cut(data, SMALL // 2)
    names = [hashlib.sha1(p).hexdigest() for p in pieces]
    sha1 = hashlib.sha1(data).hexdigest()
    assert assemble(svc, sha1, names)["state"] == "not_found"
    send(svc, pieces)
    assert until_done(svc, sha1, names)["state"] == "ok"
    [key] = stored(tmp_path, "files")
    assert (tmp_path / "uploads" / key).read_bytes() == data
    assert phase_bytes(svc, "pipeline_finish") == 0 and phase_bytes(svc, "assemble_get") == len(data)


def test_another_orgs_chunks_do_not_feed_a_pipeline(svc: ServiceProcess) -> None:
    data = ELF.read_bytes()
    pieces = cut(data, SMALL)
    names = [hashlib.sha1(p).hexdigest() for p in pieces]
    sha1 = hashlib.sha1(data).hexdigest()
    assert assemble(svc, sha1, names, project="globex/app", token=GLOBEX)["missingChunks"] == names
    assert assemble(svc, sha1, names)["missingChunks"] == names
    send(svc, pieces)
    assert until_done(svc, sha1, names)["state"] == "ok"
    assert phase_bytes(svc, "pipeline_feed") == len(data), "only acme's pipeline took acme's chunks"
    taken = assemble(svc, sha1, names, project="globex/app", token=GLOBEX)
    assert taken["state"] == "not_found" and taken["missingChunks"] == names


@pytest.mark.s3
def test_on_s3_the_stored_object_is_copied_while_the_chunks_arrive(seaweed: Any, service_factory: Any,
                                                                  tmp_path: Path) -> None:
    src = tmp_path / "big.c"
    src.write_text("int main(void) { return 0; }\n")
    subprocess.run(["gcc", "-g", "-O2", "-Wl,--build-id=sha1", str(src), "-o", str(tmp_path / "base")], check=True)
    (tmp_path / "payload").write_bytes(os.urandom(20 * 1024 * 1024))
    big = tmp_path / "big.debug"
    subprocess.run(["objcopy", "--add-section", f".debug_bench={tmp_path / 'payload'}", "--set-section-flags",
                    ".debug_bench=readonly,debug", str(tmp_path / "base"), str(big)], check=True)
    bucket = f"pipe-{os.urandom(4).hex()}"
    seaweed.make_bucket(bucket)
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1"}
    s3_settings = {"bucket": bucket, "endpoint_url": seaweed.endpoint_url, "region": "us-east-1"}
    svc = service_factory({**settings(tmp_path), "storage": {"backend": "s3", "s3": s3_settings},
                           "limits": {}}, env=env)
    data = big.read_bytes()
    pieces = cut(data, 8 * 1024 * 1024)
    assert len(pieces) == 3
    names = [hashlib.sha1(p).hexdigest() for p in pieces]
    sha1 = hashlib.sha1(data).hexdigest()
    assert assemble(svc, sha1, names)["state"] == "not_found"
    for piece in reversed(pieces):
        send(svc, [piece])
    assert until_done(svc, sha1, names)["state"] == "ok"
    assert phase_bytes(svc, "pipeline_compose") == len(data), svc.log()
    build_id = re.search(r"Build ID: ([0-9a-f]+)", subprocess.run(["readelf", "-n", str(big)], capture_output=True,
                                                                  text=True, check=True).stdout).group(1)  # type: ignore[union-attr]
    s3 = S3Storage(bucket=bucket, endpoint_url=seaweed.endpoint_url, region="us-east-1",
                   access_key=seaweed.access_key, secret_key=seaweed.secret_key)
    out = tmp_path / "stored"
    s3.get_to_path(keys.debug_file(Scope("acme/web"), CodeId(build_id), ObjectKind.DEBUGINFO), out)
    assert out.read_bytes() == data
    index = indexes.read_json(s3, keys.debug_id_index(Scope("acme/web"),
                                                      DebugId.from_elf_build_id(bytes.fromhex(build_id))))
    assert index is not None and index["files"][0]["size"] == len(data)


def test_the_real_sentry_cli_names_its_chunks_first_so_its_upload_is_pipelined(svc: ServiceProcess,
                                                                               tmp_path: Path) -> None:
    """The premise of the pipeline, checked on sentry-cli 3.x: five 64 KiB chunks, all laid out as they came."""
    import shutil

    from tests.test_uploads_sentry_cli import sentry_cli

    shutil.copy(ELF, tmp_path / "app")
    out = sentry_cli(svc, "debug-files", "upload", "--wait", str(tmp_path / "app"), cwd=tmp_path, token=TOKEN)
    assert out.returncode == 0 and "OK " in out.stdout + out.stderr, out.stdout + out.stderr + svc.log()
    assert phase_bytes(svc, "pipeline_finish") == ELF.stat().st_size
    assert phase_bytes(svc, "pipeline_feed") == ELF.stat().st_size
    assert phase_bytes(svc, "assemble_get") == 0
    [key] = stored(tmp_path, "files")
    assert (tmp_path / "uploads" / key).read_bytes() == ELF.read_bytes()
