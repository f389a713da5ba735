"""`/symbolicate-jvm` on the real service, with mappings uploaded by the real sentry-cli and our uploader.

Each real obfuscated trace (tests/fixtures/jvm/traces) is sent as Sentry sends it (one stack
trace per exception of the `Caused by:` chain, outermost frame first); the answer must list
the frames ProGuard's retrace printed (tests/fixtures/jvm/expected), class, method and line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests

from symbolicator.proguard.mapping import mapping_uuid
from tests.support.service import ServiceProcess
from tests.support.tools import SENTRY_CLI, SENTRY_CLI_2

REPO = Path(__file__).resolve().parent.parent
JVM = REPO / "tests" / "fixtures" / "jvm"
TOKEN = "sntryu_" + "ef" * 32
FORCED_UUID = "0b5c5a1e-5c7a-4f5e-9d2a-6c1c4b7f2e11"
FRAME = re.compile(r"^\s*at (?:[\w.]+/)?([^\s(]+)\.([^.\s(]+)\(([^:)]*)(?::(\d+))?\)")
SCENARIOS = ["validate", "parse", "worker", "wrapped"]


def sections(text: str) -> list[list[tuple[str, str, int]]]:
    """One list of (class, method, line) per exception of the trace, innermost frame first."""
    out: list[list[tuple[str, str, int]]] = []
    for line in text.splitlines():
        if line.startswith(("Exception in thread", "Caused by:")) or not out:
            out.append([])
        m = FRAME.match(line)
        if m:
            out[-1].append((m.group(1), m.group(2), int(m.group(4) or 0)))
    return out


@pytest.fixture
def svc(service_factory: Any, tmp_path: Path) -> ServiceProcess:
    service: ServiceProcess = service_factory({
        "storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
        "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"tokens": {TOKEN: {"scopes": ["acme/*"], "rights": ["upload", "symbolicate"]}}},
    })
    return service


def sentry_cli(svc: ServiceProcess, cli: list[str], work: Path, *args: str) -> str:
    env = {"PATH": os.environ["PATH"], "HOME": str(work), "SENTRY_URL": svc.url, "SENTRY_AUTH_TOKEN": TOKEN,
           "SENTRY_ORG": "acme", "SENTRY_PROJECT": "web", "SENTRY_DISABLE_UPDATE_CHECK": "true",
           "SENTRY_NO_PROGRESS_BAR": "1", "SENTRY_LOAD_DOTENV": "0"}
    out = subprocess.run([*cli, *args], cwd=work, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert out.returncode == 0, out.stdout + out.stderr + svc.log()
    return out.stdout + out.stderr


def symbolicate(svc: ServiceProcess, body: dict[str, Any], scope: str = "acme/web") -> dict[str, Any]:
    r = requests.post(f"{svc.url}/symbolicate-jvm", params={"scope": scope}, json=body,
                      headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    assert r.status_code == 200, r.text
    answer: dict[str, Any] = r.json()
    assert answer["status"] == "completed"
    return answer


def wait_until_found(svc: ServiceProcess, uuid: str) -> None:
    """`upload-proguard` has no `--wait`: sentry-cli 3 returns once the server started assembling."""
    deadline = time.monotonic() + 60
    while symbolicate(svc, {"modules": [{"uuid": uuid, "type": "proguard"}]})["errors"]:
        assert time.monotonic() < deadline, svc.log()
        time.sleep(0.2)


def request_for(trace: str, uuid: str) -> dict[str, Any]:
    stacktraces = [{"frames": [{"module": c, "function": m, "lineno": line, "filename": "SourceFile", "index": i}
                               for i, (c, m, line) in enumerate(reversed(frames))]}
                   for frames in sections(trace)]
    return {"modules": [{"uuid": uuid, "type": "proguard"}], "stacktraces": stacktraces}


def answered_frames(answer: dict[str, Any]) -> list[list[tuple[str, str, int]]]:
    return [[(f["module"], f["function"], f["lineno"]) for f in reversed(st["frames"])] for st in answer["stacktraces"]]


@pytest.mark.parametrize("uploader", ["sentry-cli-3", "sentry-cli-3-forced-uuid", "sentry-cli-2-forced-uuid",
                                      "symbolicator"])
def test_uploaded_mapping_remaps_real_traces_as_retrace(svc: ServiceProcess, tmp_path: Path, uploader: str) -> None:
    mapping = JVM / "mapping.txt"
    uuid = str(mapping_uuid(mapping.read_bytes()))
    if uploader == "sentry-cli-3":
        out = sentry_cli(svc, SENTRY_CLI, tmp_path, "upload-proguard", str(mapping))
        assert f"UPLOADED {uuid} (Proguard mapping)" in out
        wait_until_found(svc, uuid)
    elif uploader == "sentry-cli-3-forced-uuid":
        uuid = FORCED_UUID
        out = sentry_cli(svc, SENTRY_CLI, tmp_path, "upload-proguard", "--uuid", uuid, str(mapping))
        assert f"UPLOADED {uuid} (Proguard mapping)" in out
        wait_until_found(svc, uuid)
    elif uploader == "sentry-cli-2-forced-uuid":
        # Android builds pass the UUID they wrote into the app; the SDK reports that one.
        uuid = FORCED_UUID
        out = sentry_cli(svc, SENTRY_CLI_2, tmp_path, "upload-proguard", "--uuid", uuid, str(mapping))
        assert uuid in out
    else:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out = subprocess.run([sys.executable, "-m", "symbolicator", "upload", "--url", svc.url, "--token", TOKEN,
                              "--scope", "acme/web", "--wait", "--no-progress", str(mapping)],
                             capture_output=True, text=True, env=env, timeout=120, check=False)
        assert out.returncode == 0, out.stdout + out.stderr + svc.log()
    for scenario in SCENARIOS:
        answer = symbolicate(svc, request_for((JVM / "traces" / f"{scenario}.txt").read_text(), uuid))
        assert answer["errors"] == []
        expected = sections((JVM / "expected" / f"{scenario}.txt").read_text())
        assert answered_frames(answer) == expected, scenario


def test_answer_has_symbolicators_shape(svc: ServiceProcess, tmp_path: Path) -> None:
    sentry_cli(svc, SENTRY_CLI, tmp_path, "upload-proguard", str(JVM / "mapping.txt"))
    uuid = str(mapping_uuid((JVM / "mapping.txt").read_bytes()))
    wait_until_found(svc, uuid)
    body = request_for((JVM / "traces" / "validate.txt").read_text(), uuid)
    body["exceptions"] = [{"type": "a", "module": "com.example.b"}, {"type": "Nope", "module": "x.y"}]
    body["classes"] = ["com.example.a.a", "com.example.zz"]
    body["release_package"] = "com.example.util"
    body["modules"].append({"uuid": "11111111-2222-3333-4444-555555555555", "type": "proguard"})
    answer = symbolicate(svc, body)
    assert answer["exceptions"] == [{"type": "Processor", "module": "com.example.util"},
                                    {"type": "Nope", "module": "x.y"}]
    assert answer["classes"] == {"com.example.a.a": "com.example.model.Order"}
    assert answer["errors"] == [{"uuid": "11111111-2222-3333-4444-555555555555", "type": "missing"}]
    frames = answer["stacktraces"][0]["frames"]
    # The innermost obfuscated frame (index 3) became validate <- handle, both keeping index 3.
    assert [(f["function"], f["index"]) for f in frames[-2:]] == [("handle", 3), ("validate", 3)]
    assert [f.get("in_app") for f in frames] == [None, None, None, None, True, True]
    # Frames keep their file only where the class is the obfuscated frame's real method's.
    assert frames[2]["module"] == "com.example.app.Main$Outer$Inner" and "filename" in frames[2]


def test_unusable_mappings_are_errors_per_module(svc: ServiceProcess, tmp_path: Path) -> None:
    no_lines = tmp_path / "mapping.txt"
    no_lines.write_text("com.example.Main -> a:\n    void run() -> a\n")
    upload = requests.post(f"{svc.url}/api/0/projects/acme/web/files/dsyms/",
                           headers={"Authorization": f"Bearer {TOKEN}"},
                           files={"file": ("mapping.txt", no_lines.read_bytes())}, timeout=60)
    assert upload.status_code == 201, upload.text
    uuid = str(mapping_uuid(no_lines.read_bytes()))
    frame = {"module": "a", "function": "a", "lineno": 3, "index": 0}
    answer = symbolicate(svc, {"modules": [{"uuid": uuid, "type": "proguard"}], "stacktraces": [{"frames": [frame]}]})
    assert answer["errors"] == [{"uuid": uuid, "type": "no_line_info"}]
    assert answer["stacktraces"][0]["frames"] == [frame]
    # Without a scope there are no uploads to look in.
    answer = symbolicate(svc, {"modules": [{"uuid": uuid, "type": "proguard"}]}, scope="")
    assert answer["errors"] == [{"uuid": uuid, "type": "missing"}]


BAD_BODIES: list[Any] = [
    [], {"modules": [{"uuid": "nope", "type": "proguard"}]}, {"modules": [{"uuid": FORCED_UUID, "type": "elf"}]},
    {"stacktraces": [{"frames": [{"module": "a"}]}]},
    {"stacktraces": [{"frames": [{"module": "a", "function": "b", "lineno": "12"}]}]},
    {"exceptions": [{"type": 1}]}, {"classes": [3]}, {"release_package": 5},
    {"options": {"apply_source_context": "yes"}}, {"options": []},
]


def test_bad_bodies_are_422(svc: ServiceProcess) -> None:
    for body in BAD_BODIES:
        r = requests.post(f"{svc.url}/symbolicate-jvm", json=body, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=30)
        assert r.status_code == 422, (body, r.text)
    assert requests.get(f"{svc.url}/healthcheck", timeout=10).text == "ok"


def metric(svc: ServiceProcess, name: str) -> float:
    m = re.search(rf"^{name} (\S+)$", requests.get(svc.url + "/metrics", timeout=10).text, re.M)
    return float(m.group(1)) if m else 0.0


def test_concurrent_requests_share_one_conversion(svc: ServiceProcess) -> None:
    mapping = (JVM / "mapping.txt").read_bytes()
    upload = requests.post(f"{svc.url}/api/0/projects/acme/web/files/dsyms/",
                           headers={"Authorization": f"Bearer {TOKEN}"}, files={"file": ("mapping.txt", mapping)},
                           timeout=60)
    assert upload.status_code == 201, upload.text
    body = request_for((JVM / "traces" / "validate.txt").read_text(), str(mapping_uuid(mapping)))
    expected = sections((JVM / "expected" / "validate.txt").read_text())
    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(lambda _: symbolicate(svc, body), range(20)))
    assert all(answered_frames(a) == expected for a in answers)
    assert metric(svc, "symbolicator_jvm_conversions_total") == 1


@pytest.mark.parametrize("cli", [SENTRY_CLI, SENTRY_CLI_2], ids=["3", "2"])
def test_sentry_cli_reads_the_same_uuid(cli: list[str], tmp_path: Path) -> None:
    """`sentry-cli debug-files check` names the mapping `proguard` with the debug id we compute.
    (`debug-files upload` finds no debug file in a folder of mappings: `upload-proguard` is the way.)"""
    out = subprocess.run([*cli, "debug-files", "check", str(JVM / "mapping.txt")], capture_output=True, text=True,
                         env={"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, timeout=60, check=False)
    assert "Type: proguard" in out.stdout, out.stdout + out.stderr
    assert f"Debug ID: {mapping_uuid((JVM / 'mapping.txt').read_bytes())}" in out.stdout


@pytest.mark.s3
def test_on_s3_the_mapping_is_stored_at_its_key_and_found(seaweed: Any, service_factory: Any, tmp_path: Path) -> None:
    """The same path on the S3 backend (SeaweedFS): the object at the unified key, the index read
    through the scope's generation marker."""
    from symbolicator import keys
    from symbolicator.storage.s3 import S3Storage
    from symbolicator.types import CodeId, ObjectKind, Scope

    bucket = f"jvm-{os.urandom(4).hex()}"
    seaweed.make_bucket(bucket)
    s3 = {"bucket": bucket, "prefix": "sym/", "endpoint_url": seaweed.endpoint_url, "region": "us-east-1"}
    svc = service_factory({
        "storage": {"backend": "s3", "s3": s3}, "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"tokens": {TOKEN: {"scopes": ["acme/*"], "rights": ["upload", "symbolicate"]}}},
    }, env={"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1"})
    mapping = JVM / "mapping.txt"
    uuid = mapping_uuid(mapping.read_bytes())
    sentry_cli(svc, SENTRY_CLI, tmp_path, "upload-proguard", str(mapping))
    wait_until_found(svc, str(uuid))
    reader = S3Storage(access_key=seaweed.access_key, secret_key=seaweed.secret_key, **s3)
    stored = tmp_path / "stored"
    reader.get_to_path(keys.debug_file(Scope("acme/web"), CodeId(uuid.hex), ObjectKind.PROGUARD), stored)
    assert stored.read_bytes() == mapping.read_bytes()
    answer = symbolicate(svc, request_for((JVM / "traces" / "parse.txt").read_text(), str(uuid)))
    assert answered_frames(answer) == sections((JVM / "expected" / "parse.txt").read_text())


def test_source_context_from_a_jvm_source_bundle(svc: ServiceProcess, tmp_path: Path) -> None:
    """sentry-cli bundles the app's sources (`debug-files bundle-jvm`) and uploads the bundle; frames
    get the lines around retrace's line from the real source file."""
    bundle_id = "3a5f2c61-8a9b-4c2d-9e1f-0123456789ab"
    sentry_cli(svc, SENTRY_CLI, tmp_path, "debug-files", "bundle-jvm", "--output", str(tmp_path / "bundle"),
               "--debug-id", bundle_id, str(JVM / "src"))
    sentry_cli(svc, SENTRY_CLI, tmp_path, "debug-files", "upload", "--type", "jvm", "--wait", str(tmp_path / "bundle"))
    mapping = JVM / "mapping.txt"
    uuid = str(mapping_uuid(mapping.read_bytes()))
    sentry_cli(svc, SENTRY_CLI, tmp_path, "upload-proguard", str(mapping))
    wait_until_found(svc, uuid)
    body = request_for((JVM / "traces" / "wrapped.txt").read_text(), uuid)
    body["modules"].append({"uuid": bundle_id, "type": "source"})
    answer = symbolicate(svc, body)
    checked = 0
    for frame in (f for st in answer["stacktraces"] for f in st["frames"]):
        path = JVM / "src" / (frame["module"].split("$")[0].replace(".", "/") + ".java")
        if not path.exists():
            assert "context_line" not in frame  # the JDK's own frames
            continue
        lines, n = path.read_text().split("\n"), frame["lineno"]
        assert frame["context_line"] == lines[n - 1]
        assert frame["pre_context"] == lines[max(0, n - 6):n - 1]
        assert frame["post_context"] == lines[n:n + 5]
        checked += 1
    assert checked == 6
    body["options"] = {"apply_source_context": False}
    assert all("context_line" not in f for st in symbolicate(svc, body)["stacktraces"] for f in st["frames"])
