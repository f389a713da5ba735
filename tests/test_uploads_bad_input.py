"""Bad uploads get a precise error and leave nothing half-stored; a crash mid-assemble loses nothing.

The service runs as a real process on the local storage backend; the checks
read its `uploads/` folder directly.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import time
import zipfile
from pathlib import Path
from typing import Any, Callable

import pytest
import requests

from tests.support.service import ServiceProcess
from tests.support.slow_storage import slow_serve

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/c_gcc_O2_dwarf5"
TOKEN = "test-token-acme"
OTHER_TOKEN = "test-token-other"
CHUNK = 64 * 1024


def settings(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
        "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"tokens": {TOKEN: {"scopes": ["acme/web"], "rights": ["upload"]},
                            OTHER_TOKEN: {"scopes": ["other/*"], "rights": ["upload"]}}},
        "limits": {"chunk_size": CHUNK, "max_body_bytes": 256 * 1024,
                   "max_bundle_uncompressed_bytes": 8 * 1024 * 1024},
    }
    for section, values in extra.items():
        base.setdefault(section, {}).update(values)
    return base


def stored(tmp_path: Path, prefix: str) -> list[str]:
    root = tmp_path / "uploads"
    return sorted(str(p.relative_to(root)) for p in (root / prefix).rglob("*") if p.is_file()) \
        if (root / prefix).exists() else []


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def send_chunks(svc: ServiceProcess, data: bytes, token: str = TOKEN) -> list[str]:
    chunks = [data[i:i + CHUNK] for i in range(0, len(data), CHUNK)]
    names = [hashlib.sha1(c).hexdigest() for c in chunks]
    files = [("file_gzip", (n, gzip.compress(c), "application/octet-stream")) for n, c in zip(names, chunks)]
    r = requests.post(f"{svc.url}/api/0/organizations/acme/chunk-upload/", files=files, headers=auth(token),
                      timeout=30)
    assert r.status_code == 200, r.text
    return names


def assemble_dif(svc: ServiceProcess, data: bytes, chunks: list[str], name: str = "file",
                 token: str = TOKEN) -> requests.Response:
    sha1 = hashlib.sha1(data).hexdigest()
    return requests.post(f"{svc.url}/api/0/projects/acme/web/files/difs/assemble/",
                         json={sha1: {"name": name, "chunks": chunks}}, headers=auth(token), timeout=30)


def wait_state(call: Callable[[], dict[str, Any]], timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = call()
        if answer["state"] not in ("created", "assembling") or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def upload_dif(svc: ServiceProcess, data: bytes, name: str = "file") -> dict[str, Any]:
    chunks = send_chunks(svc, data)
    sha1 = hashlib.sha1(data).hexdigest()
    return wait_state(lambda: assemble_dif(svc, data, chunks, name).json()[sha1])


def make_bundle(members: dict[str, bytes], manifest: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, body in members.items():
            zf.writestr(name, body)
        zf.writestr("manifest.json", json.dumps(manifest))
    return b"SYSB" + struct.pack("<I", 2) + buf.getvalue()


def upload_bundle(svc: ServiceProcess, data: bytes) -> dict[str, Any]:
    chunks = send_chunks(svc, data)
    body = {"checksum": hashlib.sha1(data).hexdigest(), "chunks": chunks, "projects": ["web"], "version": "1.0"}
    return wait_state(lambda: requests.post(f"{svc.url}/api/0/organizations/acme/artifactbundle/assemble/",
                                            json=body, headers=auth(), timeout=30).json())


@pytest.fixture
def svc(service_factory: Any, tmp_path: Path) -> ServiceProcess:
    return service_factory(settings(tmp_path))  # type: ignore[no-any-return]


def test_chunk_whose_sha1_does_not_match_its_name(svc: ServiceProcess, tmp_path: Path) -> None:
    wrong = "0" * 40
    r = requests.post(f"{svc.url}/api/0/organizations/acme/chunk-upload/",
                      files=[("file", (wrong, b"some bytes", "application/octet-stream"))], headers=auth(), timeout=10)
    assert r.status_code == 400
    assert "checksum mismatch" in r.json()["detail"]
    assert stored(tmp_path, "chunks") == []


def test_chunk_that_is_not_gzip(svc: ServiceProcess, tmp_path: Path) -> None:
    body = b"plain bytes"
    r = requests.post(f"{svc.url}/api/0/organizations/acme/chunk-upload/",
                      files=[("file_gzip", (hashlib.sha1(body).hexdigest(), body, "application/octet-stream"))],
                      headers=auth(), timeout=10)
    assert r.status_code == 400 and "gzip" in r.json()["detail"]
    assert stored(tmp_path, "chunks") == []


def test_gzip_bomb_chunk_is_refused(svc: ServiceProcess, tmp_path: Path) -> None:
    payload = b"\0" * (CHUNK * 50)
    r = requests.post(f"{svc.url}/api/0/organizations/acme/chunk-upload/",
                      files=[("file_gzip", (hashlib.sha1(payload).hexdigest(), gzip.compress(payload),
                                            "application/octet-stream"))], headers=auth(), timeout=10)
    assert r.status_code == 400 and "too large" in r.json()["detail"]


def test_assemble_naming_chunks_never_sent(svc: ServiceProcess, tmp_path: Path) -> None:
    data = ELF.read_bytes()
    names = [hashlib.sha1(data[i:i + CHUNK]).hexdigest() for i in range(0, len(data), CHUNK)]
    sha1 = hashlib.sha1(data).hexdigest()
    answer = assemble_dif(svc, data, names).json()[sha1]
    assert answer["state"] == "not_found"
    assert answer["missingChunks"] == names
    send_chunks(svc, data[:CHUNK])
    answer = assemble_dif(svc, data, names).json()[sha1]
    assert answer["missingChunks"] == names[1:]
    assert stored(tmp_path, "files") == []


def test_file_that_is_no_debug_file(svc: ServiceProcess, tmp_path: Path) -> None:
    answer = upload_dif(svc, b"just some text, certainly not an object file\n" * 100, "notes.txt")
    assert answer["state"] == "error"
    assert "not a debug file" in answer["detail"]
    assert stored(tmp_path, "files") == [] and stored(tmp_path, "index") == []


@pytest.mark.parametrize("cut", [100, 2000, 0.6])
def test_truncated_elf(svc: ServiceProcess, tmp_path: Path, cut: float) -> None:
    data = ELF.read_bytes()
    data = data[:int(cut if cut > 1 else len(data) * cut)]
    answer = upload_dif(svc, data, "truncated")
    assert answer["state"] == "error", answer
    assert answer["detail"]
    assert stored(tmp_path, "files") == [] and stored(tmp_path, "index") == []


def test_checksum_of_assembled_file_must_match(svc: ServiceProcess, tmp_path: Path) -> None:
    data = ELF.read_bytes()
    chunks = send_chunks(svc, data)
    lie = hashlib.sha1(b"something else").hexdigest()
    call = lambda: requests.post(f"{svc.url}/api/0/projects/acme/web/files/difs/assemble/",  # noqa: E731
                                 json={lie: {"name": "x", "chunks": chunks}}, headers=auth(), timeout=10).json()[lie]
    answer = wait_state(call)
    assert answer["state"] == "error" and "checksum mismatch" in answer["detail"]
    assert stored(tmp_path, "files") == []


def test_zip_bomb_bundle(svc: ServiceProcess, tmp_path: Path) -> None:
    bomb = make_bundle({"files/_/_/a.js": b"\0" * (64 * 1024 * 1024)},
                       {"files": {"files/_/_/a.js": {"type": "minified_source", "url": "~/a.js"}}})
    assert len(bomb) < 1024 * 1024
    answer = upload_bundle(svc, bomb)
    assert answer["state"] == "error" and "unpack" in answer["detail"]
    assert stored(tmp_path, "bundles") == [] and stored(tmp_path, "index") == []


@pytest.mark.parametrize("name", ["../evil.js", "files/../../evil.js", "/etc/passwd", "files\\..\\evil.js"])
def test_path_traversal_in_bundle(svc: ServiceProcess, tmp_path: Path, name: str) -> None:
    bundle = make_bundle({name: b"alert(1)"}, {"files": {name: {"type": "minified_source", "url": "~/evil.js"}}})
    answer = upload_bundle(svc, bundle)
    assert answer["state"] == "error" and "safe relative path" in answer["detail"]
    assert stored(tmp_path, "bundles") == [] and stored(tmp_path, "index") == []
    assert not (tmp_path / "evil.js").exists()


def test_body_over_the_limit(svc: ServiceProcess) -> None:
    body = {("%040x" % i): {"name": "x" * 100, "chunks": []} for i in range(3000)}
    r = requests.post(f"{svc.url}/api/0/projects/acme/web/files/difs/assemble/", json=body, headers=auth(), timeout=10)
    assert r.status_code == 413 and "too large" in r.json()["detail"]


def test_auth(svc: ServiceProcess) -> None:
    url = f"{svc.url}/api/0/projects/acme/web/files/difs/assemble/"
    assert requests.post(url, json={}, timeout=10).status_code == 401
    assert requests.post(url, json={}, headers=auth("nope"), timeout=10).status_code == 401
    r = requests.post(url, json={}, headers=auth(OTHER_TOKEN), timeout=10)
    assert r.status_code == 403 and "acme/web" in r.json()["detail"]
    r = requests.get(f"{svc.url}/api/0/organizations/acme/chunk-upload/", headers=auth(OTHER_TOKEN), timeout=10)
    assert r.status_code == 403
    assert requests.post(url, json={}, headers=auth(), timeout=10).status_code == 200


def test_not_json_and_wrong_shape(svc: ServiceProcess) -> None:
    url = f"{svc.url}/api/0/organizations/acme/artifactbundle/assemble/"
    r = requests.post(url, data=b"{nope", headers=auth(), timeout=10)
    assert r.status_code == 400 and "not JSON" in r.json()["detail"]
    r = requests.post(url, json={"checksum": "x" * 40, "chunks": [], "projects": ["web"]}, headers=auth(), timeout=10)
    assert r.status_code == 400 and "SHA-1" in r.json()["detail"]
    r = requests.post(url, json={"checksum": "a" * 40, "chunks": []}, headers=auth(), timeout=10)
    assert r.status_code == 422


def test_health_and_metrics(svc: ServiceProcess) -> None:
    assert requests.get(svc.url + "/healthcheck", timeout=5).text == "ok"
    upload_dif(svc, ELF.read_bytes(), "hello")
    text = requests.get(svc.url + "/metrics", timeout=5).text
    assert 'symbolicator_uploads_total{kind="debug_file",state="ok"} 1.0' in text
    assert "symbolicator_http_request_duration_seconds_bucket" in text
    assert "symbolicator_storage_bytes_stored_total" in text


def test_sigkill_while_assembling_leaves_nothing_and_retry_completes(service_factory: Any, tmp_path: Path) -> None:
    # Publishing the file (its key, its index entries) waits 30 s: SIGKILL lands in the middle.
    slow = service_factory(settings(tmp_path), command=slow_serve(30.0, "files/", "index/"))
    data = ELF.read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    chunks = send_chunks(slow, data)
    assert assemble_dif(slow, data, chunks, "hello").json()[sha1]["state"] == "created"
    time.sleep(0.5)
    assert assemble_dif(slow, data, chunks, "hello").json()[sha1]["state"] == "assembling"
    slow.kill()

    assert stored(tmp_path, "files") == [] and stored(tmp_path, "index") == []
    assert stored(tmp_path, "assemble") == []
    restarted = service_factory(settings(tmp_path))
    answer = upload_dif(restarted, data, "hello")
    assert answer["state"] == "ok", answer
    files = stored(tmp_path, "files")
    assert len(files) == 1 and files[0].endswith("/debuginfo")
    assert (tmp_path / "uploads" / files[0]).read_bytes() == data
    assert not any(p.name.startswith(".") for p in (tmp_path / "uploads" / "files").rglob("*"))


def test_single_request_upload_with_curl(svc: ServiceProcess, tmp_path: Path) -> None:
    import subprocess

    out = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {TOKEN}", "-F", f"file=@{ELF};filename=hello",
                          "-w", "\n%{http_code}", f"{svc.url}/api/0/projects/acme/web/files/dsyms/"],
                         capture_output=True, text=True, timeout=30)
    body, status = out.stdout.rsplit("\n", 1)
    assert status == "201", out.stdout + out.stderr
    dif = json.loads(body)[0]
    assert dif["objectName"] == "hello" and dif["cpuName"] == "x86_64" and "debug" in dif["data"]["features"]
    files = stored(tmp_path, "files")
    assert len(files) == 1 and (tmp_path / "uploads" / files[0]).read_bytes() == ELF.read_bytes()
    bad = subprocess.run(["curl", "-sS", "-H", f"Authorization: Bearer {TOKEN}", "-F", f"file=@{__file__}",
                          "-w", "\n%{http_code}", f"{svc.url}/api/0/projects/acme/web/files/dsyms/"],
                         capture_output=True, text=True, timeout=30)
    body, status = bad.stdout.rsplit("\n", 1)
    assert status == "400" and "not a debug file" in json.loads(body)["detail"]


MALFORMED_MULTIPART = {
    "no starting boundary": b"this is not multipart at all",
    "another boundary": b'--abc\r\nContent-Disposition: form-data; name="F"\r\n\r\nabc\r\n--abc--\r\n',
    "bad part header": b"--xyz\r\nnonsense header line\r\n\r\nabc\r\n--xyz--\r\n",
    "nested multipart": (b'--xyz\r\nContent-Type: multipart/mixed; boundary=q\r\nContent-Disposition: form-data; '
                         b'name="F"\r\n\r\n--q\r\n\r\nabc\r\n--xyz--\r\n'),
    "truncated part": b'--xyz\r\nContent-Disposition: form-data; name="F"; filename="' + b"a" * 40 + b'"\r\n\r\nabc',
}
MULTIPART_ROUTES = {
    "/api/0/organizations/acme/chunk-upload/": "file",
    "/api/0/projects/acme/web/files/dsyms/": "file",
    "/applecrashreport": "apple_crash_report",
}


@pytest.mark.parametrize("route", list(MULTIPART_ROUTES))
def test_malformed_multipart_is_a_400(svc: ServiceProcess, tmp_path: Path, route: str) -> None:
    """Issue 15.9: each of these answered 500 "internal error" with a traceback in the log."""
    for what, body in MALFORMED_MULTIPART.items():
        r = requests.post(svc.url + route, data=body.replace(b'name="F"', f'name="{MULTIPART_ROUTES[route]}"'.encode()),
                          headers={**auth(), "Content-Type": "multipart/form-data; boundary=xyz"}, timeout=10)
        assert r.status_code == 400, (what, r.status_code, r.text)
        assert "multipart" in r.json()["detail"], (what, r.text)
    assert "Traceback" not in svc.log() and "internal error" not in svc.log()
    assert stored(tmp_path, "chunks") == [] and stored(tmp_path, "files") == []
    assert upload_dif(svc, ELF.read_bytes(), "hello")["state"] == "ok", "the service keeps serving"
