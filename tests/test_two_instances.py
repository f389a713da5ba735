"""Two service instances on one SeaweedFS: what is uploaded through one is symbolicated by the other.

Instances share nothing but the S3 store (each has its own cache folder), as when N of them
run behind a load balancer (README, "Scale past one machine"). Expectations come from
llvm-symbolizer (native) and from the frames `node --enable-source-maps` printed (JS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.service import ServiceProcess
from tests.support.native_service import TOKEN, by_original_index, elf_info, elf_module, llvm_symbolize, ours

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/cpp_gcc_O3_dwarf5"
JS = REPO / "tests/fixtures/js"

pytestmark = pytest.mark.s3


@pytest.fixture
def two(seaweed: Any, tmp_path: Path) -> Any:
    bucket = f"two-{os.urandom(4).hex()}"
    seaweed.make_bucket(bucket)
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1"}
    started = []
    for name in ("a", "b"):
        root = tmp_path / name
        root.mkdir()
        started.append(ServiceProcess(root, {
            "storage": {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": seaweed.endpoint_url,
                                                "region": "us-east-1"}},
            "cache": {"dir": str(root / "cache")},
            "auth": {"tokens": {TOKEN: {"scopes": ["acme/web"], "rights": ["upload", "symbolicate"]}}},
            "workers": 1,
        }, env=env).start())
    yield started
    for svc in started:
        svc.stop()


def upload_bundle(svc: ServiceProcess, tmp_path: Path, release: str) -> None:
    """The esbuild fixture's bundle and map under `release`, through `symbolicator upload`."""
    web = tmp_path / "web"
    (web / "static").mkdir(parents=True)
    for f in ("app.js", "app.js.map"):
        (web / "static" / f).write_bytes((JS / "out" / "esbuild" / f).read_bytes())
    up = subprocess.run([sys.executable, "-m", "symbolicator", "upload", "--url", svc.url, "--token", TOKEN,
                         "--scope", "acme/web", "--release", release, "--wait", "--no-progress", str(web)],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr


def test_upload_through_one_symbolicate_through_the_other(two: list[ServiceProcess], tmp_path: Path) -> None:
    a, b = two
    r = requests.post(f"{a.url}/api/0/projects/acme/web/files/dsyms/", files={"file": (ELF.name, ELF.read_bytes())},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 201, r.text
    upload_bundle(a, tmp_path, "1.0")

    start, end = elf_info(ELF)["text"]
    addrs = list(range(start, end, max(1, (end - start) // 40)))[:40]
    base = 0x5555_0000_0000
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(base + x), "adjust_instruction_addr": False}
                                        for x in addrs]}],
            "modules": [elf_module(ELF, image_addr=base)]}
    answer = requests.post(f"{b.url}/symbolicate", params={"scope": "acme/web"}, json=body, timeout=120).json()
    assert answer["status"] == "completed" and answer["modules"][0]["debug_status"] == "found"
    got = by_original_index(answer["stacktraces"][0]["frames"])
    expected = llvm_symbolize(ELF, addrs)
    matching = sum(ours(got.get(i, [])) == exp for i, exp in enumerate(expected) if exp)
    assert matching == sum(1 for exp in expected if exp)

    node = json.loads((JS / "expected" / "esbuild.node.json").read_text())
    js_body = {"release": "1.0", "stacktraces": [{"frames": [
        {"abs_path": "https://shop.example/static/app.js", "lineno": f["line"], "colno": f["column"]}
        for f in node["frames"]]}]}
    js = requests.post(f"{b.url}/symbolicate-js", params={"scope": "acme/web"}, json=js_body, timeout=120).json()
    assert js["status"] == "completed", js
    for frame, want in zip(js["stacktraces"][0]["frames"], node["frames"]):
        assert frame["abs_path"].endswith(want["original"]["file"]), frame
        assert (frame["lineno"], frame["colno"]) == (want["original"]["line"], want["original"]["column"])


def test_an_upload_through_one_is_seen_by_the_other_that_had_looked_before(two: list[ServiceProcess]) -> None:
    """B remembers indexes while the scope's generation marker is unchanged (S3 cannot vouch per object);
    A's upload rewrites the marker, so B's next request reads the new index."""
    a, b = two
    start, _ = elf_info(ELF)["text"]
    base = 0x5555_0000_0000
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(base + start), "adjust_instruction_addr": False}]}],
            "modules": [elf_module(ELF, image_addr=base)]}

    def debug_status() -> str:
        answer = requests.post(f"{b.url}/symbolicate", params={"scope": "acme/web"}, json=body, timeout=120).json()
        assert answer["status"] == "completed", answer
        return str(answer["modules"][0]["debug_status"])

    assert debug_status() == "missing"
    assert debug_status() == "missing"  # now from B's memory, checked against the marker
    r = requests.post(f"{a.url}/api/0/projects/acme/web/files/dsyms/", files={"file": (ELF.name, ELF.read_bytes())},
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 201, r.text
    assert debug_status() == "found"


def test_a_bundle_uploaded_through_one_is_seen_by_the_other_that_had_looked_before(
        two: list[ServiceProcess], tmp_path: Path) -> None:
    a, b = two
    node = json.loads((JS / "expected" / "esbuild.node.json").read_text())
    first = node["frames"][0]
    js_body = {"release": "2.0", "scraping": {"enabled": False}, "stacktraces": [{"frames": [
        {"abs_path": "https://shop.example/static/app.js", "lineno": first["line"], "colno": first["column"]}]}]}

    def frame() -> dict[str, Any]:
        answer = requests.post(f"{b.url}/symbolicate-js", params={"scope": "acme/web"}, json=js_body,
                               timeout=120).json()
        assert answer["status"] == "completed", answer
        return dict(answer["stacktraces"][0]["frames"][0])

    assert not frame()["data"]["symbolicated"]
    upload_bundle(a, tmp_path, "2.0")
    got = frame()
    assert got["data"]["symbolicated"], got
    assert (got["lineno"], got["colno"]) == (first["original"]["line"], first["original"]["column"])


def test_concurrent_uploads_of_one_debug_id_through_both_lose_no_entry(two: list[ServiceProcess],
                                                                        tmp_path: Path) -> None:
    """Issue 15.12: 20 + 20 files with one debug id (build-ids that differ past the 16 bytes the debug id
    keeps) uploaded at once through two instances; each instance used to read-modify-write the one index
    object, so entries written by the other at the same moment were lost."""
    from concurrent.futures import ThreadPoolExecutor

    from symbolicator import keys
    from symbolicator.artifacts.indexes import IndexReader
    from symbolicator.storage.s3 import S3Storage
    from symbolicator.types import DebugId, Scope

    a, b = two
    data = ELF.read_bytes()
    build_id = bytes.fromhex(elf_info(ELF)["build_id"])
    assert len(build_id) == 20 and data.count(build_id) == 1
    variants = [data.replace(build_id, build_id[:16] + i.to_bytes(4, "big")) for i in range(40)]

    def upload(i: int) -> str:
        svc = (a, b)[i % 2]
        r = requests.post(f"{svc.url}/api/0/projects/acme/web/files/dsyms/",
                          files={"file": (f"app-{i}", variants[i])}, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120)
        assert r.status_code == 201, r.text
        return str(r.json()[0]["codeId"])

    with ThreadPoolExecutor(max_workers=40) as pool:
        code_ids = set(pool.map(upload, range(40)))
    assert len(code_ids) == 40

    s3_settings = a.settings["storage"]["s3"]
    s3 = S3Storage(bucket=s3_settings["bucket"], endpoint_url=s3_settings["endpoint_url"], region="us-east-1",
                   access_key=a.env["AWS_ACCESS_KEY_ID"], secret_key=a.env["AWS_SECRET_ACCESS_KEY"])
    debug_id = DebugId.from_elf_build_id(build_id)
    index = IndexReader(s3).read(keys.debug_id_index(Scope("acme/web"), debug_id), generation=None)
    assert index is not None
    indexed = {f["key"].split("/")[-3] + f["key"].split("/")[-2] for f in index["files"]}
    assert indexed == code_ids, f"{len(code_ids - indexed)} of 40 index entries lost"

    start, _ = elf_info(ELF)["text"]
    base = 0x5555_0000_0000
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(base + start), "adjust_instruction_addr": False}]}],
            "modules": [elf_module(ELF, image_addr=base)]}
    for svc in (a, b):
        answer = requests.post(f"{svc.url}/symbolicate", params={"scope": "acme/web"}, json=body, timeout=120).json()
        assert answer["modules"][0]["debug_status"] == "found", answer
