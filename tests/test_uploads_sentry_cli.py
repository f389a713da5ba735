"""The real sentry-cli (npm `@sentry/cli` 3.x, and 2.x as `sentry-cli-v2`) uploads to the service, which stores on SeaweedFS.

Then the objects are read back from S3 at their unified keys and JS indexes, and
a second identical upload must send no chunk (counted by the server).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
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
from tests.support.tools import SENTRY_CLI, SENTRY_CLI_2

REPO = Path(__file__).resolve().parent.parent
BIN = REPO / "node_modules" / ".bin"
NATIVE = REPO / "tests" / "fixtures" / "native"
TOKEN = "sntryu_" + "ab" * 32
GLOBEX_TOKEN = "sntryu_" + "cd" * 32
SCOPE = Scope("acme/web")

pytestmark = pytest.mark.s3


def fixture_code_id(rel: str) -> str:
    """The build-id as readelf read it when the fixtures were built."""
    for entry in json.loads((NATIVE / "fixtures.json").read_text())["fixtures"]:
        if entry["path"] == rel:
            return str(entry["objects"][0]["code_id"])
    raise KeyError(rel)


def chunks_received(svc: ServiceProcess) -> float:
    text = requests.get(svc.url + "/metrics", timeout=10).text
    m = re.search(r"^symbolicator_chunks_received_total (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


CLIS = {"3": SENTRY_CLI, "2": SENTRY_CLI_2}


def sentry_cli(svc: ServiceProcess, *args: str, cwd: Path, major: str = "3", org: str = "acme",
               project: str = "web", token: str = TOKEN) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": os.environ["PATH"], "HOME": str(cwd),
        "SENTRY_URL": svc.url, "SENTRY_AUTH_TOKEN": token, "SENTRY_ORG": org, "SENTRY_PROJECT": project,
        "SENTRY_DISABLE_UPDATE_CHECK": "true", "SENTRY_NO_PROGRESS_BAR": "1", "SENTRY_LOAD_DOTENV": "0",
    }
    return subprocess.run([*CLIS[major], *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=180)


@pytest.fixture
def s3_service(seaweed: Any, service_factory: Any, tmp_path: Path) -> tuple[ServiceProcess, S3Storage]:
    bucket = f"up-{os.urandom(4).hex()}"
    seaweed.make_bucket(bucket)
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1"}
    svc = service_factory({
        "storage": {"backend": "s3", "s3": {"bucket": bucket, "prefix": "sym/", "endpoint_url": seaweed.endpoint_url,
                                            "region": "us-east-1"}},
        "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"tokens": {TOKEN: {"scopes": ["acme/*"], "rights": ["upload", "symbolicate"]},
                            GLOBEX_TOKEN: {"scopes": ["globex/*"], "rights": ["upload", "symbolicate"]}}},
    }, env=env)
    reader = S3Storage(bucket=bucket, prefix="sym/", endpoint_url=seaweed.endpoint_url, region="us-east-1",
                       access_key=seaweed.access_key, secret_key=seaweed.secret_key)
    return svc, reader


@pytest.mark.parametrize("major", ["3", "2"])
def test_debug_files_upload_lands_at_unified_keys(s3_service: tuple[ServiceProcess, S3Storage],
                                                  tmp_path: Path, major: str) -> None:
    svc, s3 = s3_service
    elf = tmp_path / "hello"
    shutil.copy(NATIVE / "out/elf/c_gcc_O2_dwarf5", elf)
    code_id = fixture_code_id("out/elf/c_gcc_O2_dwarf5")
    debug_id = DebugId.from_elf_build_id(bytes.fromhex(code_id))

    out = sentry_cli(svc, "debug-files", "upload", "--wait", str(elf), cwd=tmp_path, major=major)
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()
    assert f"OK {debug_id}" in out.stdout + out.stderr
    assert chunks_received(svc) >= 1

    stored = tmp_path / "stored"
    s3.get_to_path(keys.debug_file(SCOPE, CodeId(code_id), ObjectKind.DEBUGINFO), stored)
    assert stored.read_bytes() == elf.read_bytes()
    index = indexes.read_json(s3, keys.debug_id_index(SCOPE, debug_id))
    assert index["code_id"] == code_id
    assert [f["kind"] for f in index["files"]] == ["debuginfo"]
    assert index["files"][0]["arch"] == "x86_64"

    before = chunks_received(svc)
    again = sentry_cli(svc, "debug-files", "upload", "--wait", str(elf), cwd=tmp_path, major=major)
    assert again.returncode == 0, again.stderr
    assert chunks_received(svc) == before
    assert "Nothing to upload" in again.stdout + again.stderr


def esbuild_app(dest: Path) -> Path:
    src = dest / "src"
    src.mkdir(parents=True)
    (src / "app.js").write_text(
        "export class Cart {\n  constructor() { this.items = []; }\n"
        "  add(item) { if (!item.price) { throw new Error('no price: ' + item.name); } this.items.push(item); }\n}\n"
        "export function checkout(items) { const c = new Cart(); items.forEach((i) => c.add(i)); return c; }\n"
        "checkout([{ name: 'tea', price: 3 }, { name: 'cake' }]);\n"
    )
    dist = dest / "dist"
    subprocess.run([str(BIN / "esbuild"), str(src / "app.js"), "--bundle", "--minify", "--sourcemap",
                    "--format=esm", f"--outfile={dist / 'app.min.js'}"], check=True, capture_output=True)
    return dist


@pytest.mark.parametrize("major", ["3", "2"])
def test_sourcemaps_inject_and_upload_are_indexed(s3_service: tuple[ServiceProcess, S3Storage],
                                                  tmp_path: Path, major: str) -> None:
    svc, s3 = s3_service
    dist = esbuild_app(tmp_path)
    inject = sentry_cli(svc, "sourcemaps", "inject", str(dist), cwd=tmp_path, major=major)
    assert inject.returncode == 0, inject.stderr
    m = re.search(r"//# debugId=([0-9a-f-]{36})", (dist / "app.min.js").read_text())
    assert m, "sentry-cli did not inject a debug id"
    debug_id = DebugId.parse(m.group(1))

    out = sentry_cli(svc, "sourcemaps", "upload", "--release", "1.0.0", "--wait", str(dist), cwd=tmp_path,
                     major=major)
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()

    by_id = indexes.read_json(s3, keys.js_debug_id_index(SCOPE, debug_id))
    assert set(by_id["files"]) == {"minified_source", "source_map"}
    bundle_key = by_id["files"]["source_map"]["bundle"]
    assert bundle_key.startswith("bundles/acme/web/") and s3.head(bundle_key) is not None
    by_url = json.loads(s3.get_bytes(keys.js_release_index(SCOPE, "1.0.0", None, "~/app.min.js")))
    assert by_url["type"] == "minified_source" and by_url["bundle"] == bundle_key
    assert by_url["headers"]["sourcemap"] == "app.min.js.map"

    before = chunks_received(svc)
    again = sentry_cli(svc, "sourcemaps", "upload", "--release", "1.0.0", "--wait", str(dist), cwd=tmp_path,
                       major=major)
    assert again.returncode == 0, again.stderr
    assert chunks_received(svc) == before


def test_our_upload_command_speaks_the_same_protocol(s3_service: tuple[ServiceProcess, S3Storage],
                                                     tmp_path: Path) -> None:
    svc, s3 = s3_service
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(NATIVE / "out/elf/cpp_clang_O2_dwarf5", build / "app")
    dist = esbuild_app(tmp_path / "web")
    shutil.copytree(dist, build / "static")
    code_id = fixture_code_id("out/elf/cpp_clang_O2_dwarf5")
    cmd = ["symbolicator", "upload", "--url", svc.url, "--token", TOKEN, "--scope", "acme/web",
           "--release", "2.0.0", "--wait", "--no-progress", str(build)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    assert "OK " in out.stdout and "artifact bundle" in out.stdout
    assert s3.head(keys.debug_file(SCOPE, CodeId(code_id), ObjectKind.DEBUGINFO)) is not None
    assert json.loads(s3.get_bytes(keys.js_release_index(SCOPE, "2.0.0", None, "~/static/app.min.js")))

    before = chunks_received(svc)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert chunks_received(svc) == before


def test_include_sources_stores_a_source_bundle(s3_service: tuple[ServiceProcess, S3Storage], tmp_path: Path) -> None:
    svc, s3 = s3_service
    src = tmp_path / "hello.c"
    src.write_text('#include <stdio.h>\nint main(void) { puts("hello"); return 0; }\n')
    elf = tmp_path / "hello"
    subprocess.run(["gcc", "-g", "-O1", "-Wl,--build-id=sha1", str(src), "-o", str(elf)], check=True)
    code_id = subprocess.run(["readelf", "-n", str(elf)], capture_output=True, text=True, check=True).stdout
    code_id = re.search(r"Build ID: ([0-9a-f]+)", code_id).group(1)  # type: ignore[union-attr]

    out = sentry_cli(svc, "debug-files", "upload", "--include-sources", "--wait", str(elf), cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()
    debug_id = DebugId.from_elf_build_id(bytes.fromhex(code_id))
    index = indexes.read_json(s3, keys.debug_id_index(SCOPE, debug_id))
    assert sorted(f["kind"] for f in index["files"]) == ["debuginfo", "sourcebundle"]
    bundle = tmp_path / "bundle.zip"
    s3.get_to_path(keys.debug_file(SCOPE, CodeId(code_id), ObjectKind.SOURCEBUNDLE), bundle)
    import zipfile

    with zipfile.ZipFile(bundle) as zf:
        manifest = json.loads(zf.read("manifest.json"))
        member = next(name for name, f in manifest["files"].items() if f.get("path") == str(src))
        assert zf.read(member) == src.read_bytes()


def test_fat_dsym_is_stored_slice_by_slice(s3_service: tuple[ServiceProcess, S3Storage], tmp_path: Path) -> None:
    svc, s3 = s3_service
    dsym = tmp_path / "app_fat.dSYM"
    shutil.copytree(NATIVE / "out/macho/app_fat.dSYM", dsym)
    out = sentry_cli(svc, "debug-files", "upload", "--wait", str(dsym), cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()
    entry = next(e for e in json.loads((NATIVE / "fixtures.json").read_text())["fixtures"]
                 if e["path"] == "out/macho/app_fat.dSYM/Contents/Resources/DWARF/app_fat")
    for obj in entry["objects"]:
        key = keys.debug_file(SCOPE, CodeId(obj["code_id"]), ObjectKind.DEBUGINFO)
        sliced = tmp_path / f"slice-{obj['arch']}"
        s3.get_to_path(key, sliced)
        uuid = subprocess.run(["llvm-dwarfdump", "--uuid", str(sliced)], capture_output=True, text=True, check=True)
        assert obj["uuid"] in uuid.stdout and f"({obj['arch']})" in uuid.stdout
        index = indexes.read_json(s3, keys.debug_id_index(SCOPE, DebugId.parse(obj["uuid"])))
        assert index["files"][0]["arch"] == obj["arch"] and index["files"][0]["object_type"] == "debug_companion"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_another_org_must_send_the_bytes_of_a_debug_file_itself(s3_service: tuple[ServiceProcess, S3Storage],
                                                                tmp_path: Path) -> None:
    """Issue 15.1: knowing a file's SHA-1 is not enough to take it into one's own scope."""
    svc, s3 = s3_service
    elf = tmp_path / "hello"
    shutil.copy(NATIVE / "out/elf/c_gcc_O2_dwarf5", elf)
    debug_id = DebugId.from_elf_build_id(bytes.fromhex(fixture_code_id("out/elf/c_gcc_O2_dwarf5")))
    sha1 = hashlib.sha1(elf.read_bytes()).hexdigest()  # one chunk: the chunk's SHA-1 is the file's
    never_sent = hashlib.sha1(b"a file nobody uploaded").hexdigest()

    def probe(file_sha1: str) -> dict[str, Any]:
        r = requests.post(f"{svc.url}/api/0/projects/globex/app/files/difs/assemble/",
                          json={file_sha1: {"name": "hello", "chunks": [file_sha1]}}, headers=bearer(GLOBEX_TOKEN),
                          timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json()[file_sha1])

    out = sentry_cli(svc, "debug-files", "upload", "--wait", str(elf), cwd=tmp_path)
    assert out.returncode == 0 and f"OK {debug_id}" in out.stdout + out.stderr, out.stderr + out.stdout
    stolen = probe(sha1)
    assert stolen["state"] == "not_found" and stolen["missingChunks"] == [sha1], stolen
    assert stolen == {**probe(never_sent), "missingChunks": [sha1]}, "the answer must not tell that acme has the file"
    assert indexes.read_json(s3, keys.debug_id_index(Scope("globex/app"), debug_id)) is None

    before = chunks_received(svc)
    out = sentry_cli(svc, "debug-files", "upload", "--wait", str(elf), cwd=tmp_path, org="globex", project="app",
                     token=GLOBEX_TOKEN)
    assert out.returncode == 0 and f"OK {debug_id}" in out.stdout + out.stderr, out.stderr + out.stdout + svc.log()
    assert chunks_received(svc) > before, "globex must send the chunks itself"
    assert indexes.read_json(s3, keys.debug_id_index(Scope("globex/app"), debug_id)) is not None
    assert list(s3.list("chunks/")) == [keys.chunk(sha1)], "the bytes are still stored once"


def test_another_org_cannot_claim_a_bundle_named_in_used_artifact_bundles(
        s3_service: tuple[ServiceProcess, S3Storage], tmp_path: Path) -> None:
    """Symbolication is open by default, so anyone may learn a bundle's SHA-1: it must grant nothing."""
    svc, _ = s3_service
    dist = esbuild_app(tmp_path)
    assert sentry_cli(svc, "sourcemaps", "inject", str(dist), cwd=tmp_path).returncode == 0
    out = sentry_cli(svc, "sourcemaps", "upload", "--release", "1.0.0", "--wait", str(dist), cwd=tmp_path)
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()
    event = {"release": "1.0.0", "scraping": {"enabled": False},
             "stacktraces": [{"frames": [{"abs_path": "https://cdn.example.org/app.min.js", "lineno": 3,
                                          "colno": 1}]}]}
    answer = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "acme/web"}, json=event, timeout=60).json()
    [bundle_sha1] = answer["used_artifact_bundles"]

    body = {"checksum": bundle_sha1, "chunks": [bundle_sha1], "projects": ["app"], "version": "1.0.0"}
    r = requests.post(f"{svc.url}/api/0/organizations/globex/artifactbundle/assemble/", json=body,
                      headers=bearer(GLOBEX_TOKEN), timeout=30)
    assert r.status_code == 200 and r.json()["state"] == "not_found", r.text
    assert r.json()["missingChunks"] == [bundle_sha1]
    other = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "globex/app"}, json=event, timeout=60).json()
    assert other["used_artifact_bundles"] == [] and other["stacktraces"][0]["frames"][0]["data"] == \
        {"symbolicated": False}

    before = chunks_received(svc)
    out = sentry_cli(svc, "sourcemaps", "upload", "--release", "1.0.0", "--wait", str(dist), cwd=tmp_path,
                     org="globex", project="app", token=GLOBEX_TOKEN)
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()
    assert chunks_received(svc) > before, "globex must send the bundle's chunks itself"
    mine = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "globex/app"}, json=event, timeout=60).json()
    assert len(mine["used_artifact_bundles"]) == 1, "its own bundle (the manifest names globex, so another SHA-1)"



def test_identical_bundle_under_a_new_release_is_indexed(s3_service: tuple[ServiceProcess, S3Storage],
                                                         tmp_path: Path) -> None:
    """Issue 15.10: the same bundle (same SHA-1) assembled again with another `version` answered `ok` from the
    first upload's state and was not findable under the new release."""
    svc, s3 = s3_service
    dist = esbuild_app(tmp_path)
    assert sentry_cli(svc, "sourcemaps", "inject", str(dist), cwd=tmp_path).returncode == 0
    out = sentry_cli(svc, "sourcemaps", "upload", "--wait", str(dist), cwd=tmp_path)  # no release in its manifest
    assert out.returncode == 0, out.stderr + out.stdout + svc.log()
    [bundle_key] = s3.list("bundles/acme/web/")
    sha1 = bundle_key.rsplit("/", 1)[-1]
    size = s3.head(bundle_key).size  # type: ignore[union-attr]
    assert size <= 8 * 1024 * 1024, "one chunk: its SHA-1 is the bundle's"
    event = {"scraping": {"enabled": False},
             "stacktraces": [{"frames": [{"abs_path": "https://cdn.example.org/app.min.js", "lineno": 3,
                                          "colno": 1}]}]}
    for release in ("2.0.0", "2.0.1"):
        body = {"checksum": sha1, "chunks": [sha1], "projects": ["web"], "version": release}
        deadline = time.monotonic() + 30
        while (answer := requests.post(f"{svc.url}/api/0/organizations/acme/artifactbundle/assemble/", json=body,
                                       headers=bearer(TOKEN), timeout=30).json())["state"] in ("created", "assembling"):
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert answer["state"] == "ok", answer
        by_url = json.loads(s3.get_bytes(keys.js_release_index(SCOPE, release, None, "~/app.min.js")))
        assert by_url["bundle"] == bundle_key
        found = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "acme/web"},
                              json={**event, "release": release}, timeout=60).json()
        assert found["stacktraces"][0]["frames"][0]["data"]["symbolicated"] is True, found


def test_chunk_upload_advertises_only_what_is_accepted(s3_service: tuple[ServiceProcess, S3Storage]) -> None:
    svc, _ = s3_service
    options = requests.get(f"{svc.url}/api/0/organizations/acme/chunk-upload/", headers=bearer(TOKEN), timeout=30).json()
    assert sorted(options["accept"]) == ["artifact_bundles", "artifact_bundles_v2", "debug_files", "pdbs",
                                         "release_files", "sources"]


@pytest.mark.parametrize("major", ["3", "2"])
def test_a_refused_file_is_an_error_for_sentry_cli(s3_service: tuple[ServiceProcess, S3Storage], tmp_path: Path,
                                                   major: str) -> None:
    """Issue 17.2: `upload-proguard` printed UPLOADED and exited 0 while the server stored "not a debug file".

    Mappings are debug files now (issue 16, tests/test_jvm_service.py): a text that is none is refused."""
    svc, s3 = s3_service
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("Release notes\n    nothing mapped here\n")
    out = sentry_cli(svc, "upload-proguard", "--uuid", "0b5c5a1e-5c7a-4f5e-9d2a-6c1c4b7f2e11", str(mapping),
                     cwd=tmp_path, major=major)
    print(out.returncode, out.stdout, out.stderr)
    assert out.returncode != 0, out.stdout + out.stderr
    assert "not a debug file" in out.stdout + out.stderr
    assert "UPLOADED" not in out.stdout + out.stderr
    assert list(s3.list("files/")) == []
