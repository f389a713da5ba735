"""Faults injected into the real service: S3 down, cache files damaged, cache disk full, crashes.

Each test runs the service as a real process (`ServiceProcess`) and breaks one
real component under it with `chaos.inject`: SeaweedFS is stopped and started
again on the same ports and data, a cache file's bytes are changed on disk, the
cache folder is a tmpfs filled to the last byte, the service or its worker gets
SIGKILL in the middle of a conversion. The expectations are the contract
(API.md §1, issue 6): cached work keeps being served, what needs the broken part
gets a precise status (503 + Retry-After for uploads, a module status for
symbolication), nothing damaged or half-written is ever served, and the service
recovers by itself. Answers after a fault are compared with the answers the
healthy service gave, whose correctness is checked against the symbol table
(native) and Node's own source-map resolution (JS). The longer versions of
these faults (a 60 s outage under load, 500 clients) are `python -m chaos`.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from chaos.inject import (
    PrefixedService,
    PrivateTmpfs,
    RestartableSeaweed,
    alive,
    children,
    corrupt,
    kill,
    wait_for,
    workers,
)
from chaos.workload import (
    BIG_ELF,
    COLD_ELF,
    NODE_FRAMES,
    REPO,
    SCOPE,
    TOKEN,
    WARM_ELF,
    WARM_FUNCTIONS,
    check_js,
    check_native,
    cli_upload,
    converting,
    derived_caches,
    js_body,
    js_folder,
    js_frames,
    module_of,
    native_body,
    native_frames,
    post,
    symbolicated,
    uploaded,
)
from tests.support.service import ServiceProcess
from tests.support.native_service import metric, native_settings

OUTAGE_S = 2.0


# ---------------------------------------------------------------- SeaweedFS stopped under load

@dataclass
class Outage:
    """What one outage scenario saw; the tests below each check one part of it."""

    pid_before: int = 0
    pid_after: int = 0
    baseline_native: dict[str, Any] = field(default_factory=dict)
    baseline_js: dict[str, Any] = field(default_factory=dict)
    during: list[tuple[str, int, dict[str, Any]]] = field(default_factory=list)
    uploads: dict[str, requests.Response] = field(default_factory=dict)
    cold_native: requests.Response | None = None
    cold_js: requests.Response | None = None
    after_native: dict[str, Any] = field(default_factory=dict)
    after_js: dict[str, Any] = field(default_factory=dict)
    retried_upload: tuple[int, str] = (-1, "")
    cold_after: dict[str, Any] = field(default_factory=dict)
    log: str = ""


def _upload_attempts(svc: ServiceProcess) -> dict[str, requests.Response]:
    """What an uploader sends, while S3 is down: a chunk, a debug-file assemble, a bundle assemble, a file."""
    data = COLD_ELF.read_bytes()
    sha1 = hashlib.sha1(data).hexdigest()
    auth = {"Authorization": f"Bearer {TOKEN}"}
    org, project = SCOPE.split("/")
    return {
        "chunk": requests.post(f"{svc.url}/api/0/organizations/{org}/chunk-upload/", headers=auth, timeout=60,
                               files=[("file", (sha1, data, "application/octet-stream"))]),
        "dif assemble": requests.post(f"{svc.url}/api/0/projects/{org}/{project}/files/difs/assemble/",
                                      headers=auth, json={sha1: {"name": COLD_ELF.name, "chunks": [sha1]}},
                                      timeout=60),
        "bundle assemble": requests.post(f"{svc.url}/api/0/organizations/{org}/artifactbundle/assemble/",
                                         headers=auth, json={"checksum": sha1, "chunks": [sha1],
                                                             "projects": [project]}, timeout=60),
        "single file": requests.post(f"{svc.url}/api/0/projects/{org}/{project}/files/dsyms/", headers=auth,
                                     files={"file": (COLD_ELF.name, data)}, timeout=60),
    }


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    root = tmp_path_factory.mktemp("outage")
    seen = Outage()
    with RestartableSeaweed(root / "weed") as weed:
        weed.make_bucket("faults")
        svc = ServiceProcess(root, native_settings(root, storage={"backend": "s3", "s3": {
            "bucket": "faults", "endpoint_url": weed.endpoint_url, "region": weed.region}}),
            env={"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key})
        with svc:
            assert svc.proc is not None
            seen.pid_before = svc.proc.pid
            uploaded(svc, WARM_ELF, js_folder(root))
            warm_native = native_body(WARM_ELF, WARM_FUNCTIONS)
            seen.baseline_native = symbolicated(svc, "/symbolicate", warm_native)
            seen.baseline_js = symbolicated(svc, "/symbolicate-js", js_body())

            stop = threading.Event()

            def client(kind: str) -> None:
                """Until the outage window ends, and at least twice however slow the machine is
                (S3 stays down until every client returns)."""
                path, body = ("/symbolicate", warm_native) if kind == "native" else ("/symbolicate-js", js_body())
                done = 0
                while not stop.is_set() or done < 2:
                    r = post(svc, path, body)
                    seen.during.append((kind, r.status_code, r.json()))
                    done += 1

            weed.outage()
            with ThreadPoolExecutor(4) as pool:
                clients = [pool.submit(client, kind) for kind in ("native", "js", "native", "js")]
                started = time.monotonic()
                seen.uploads = _upload_attempts(svc)
                seen.cold_native = post(svc, "/symbolicate", native_body(COLD_ELF, ["main"]))
                seen.cold_js = post(svc, "/symbolicate-js", js_body(release="2.0"))
                time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - started)))
                stop.set()
                for c in clients:
                    c.result()

            weed.resume()
            seen.after_native = symbolicated(svc, "/symbolicate", warm_native)
            seen.after_js = symbolicated(svc, "/symbolicate-js", js_body())
            deadline = time.monotonic() + 30
            while True:  # a client retrying its upload until the service has noticed S3 is back
                seen.retried_upload = cli_upload(svc, COLD_ELF)
                if seen.retried_upload[0] == 0 or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            if seen.retried_upload[0] == 0:
                seen.cold_after = symbolicated(svc, "/symbolicate", native_body(COLD_ELF, ["main"]))
            seen.pid_after = svc.proc.pid if svc.proc.poll() is None else -1
            seen.log = svc.log_path.read_text(errors="replace")
    yield seen


def test_outage_warm_requests_keep_succeeding_from_the_cache(outage: Outage) -> None:
    check_native(outage.baseline_native, WARM_FUNCTIONS)
    check_js(outage.baseline_js)
    kinds = {kind for kind, _, _ in outage.during}
    assert kinds == {"native", "js"} and len(outage.during) >= 8, outage.during[:3]
    for kind, status, answer in outage.during:
        assert status == 200 and answer["status"] == "completed", (kind, answer)
        if kind == "native":
            assert native_frames(answer) == native_frames(outage.baseline_native)
            assert module_of(answer)["debug_status"] == "found"
        else:
            assert js_frames(answer) == js_frames(outage.baseline_js)
            assert answer["errors"] == []


def test_outage_uploads_answer_503_with_retry_after(outage: Outage) -> None:
    for name, r in outage.uploads.items():
        assert r.status_code == 503, (name, r.status_code, r.text)
        assert int(r.headers["Retry-After"]) > 0, name
        assert isinstance(r.json()["detail"], str) and r.json()["detail"], name


def test_outage_cold_native_request_gets_a_module_status(outage: Outage) -> None:
    assert outage.cold_native is not None and outage.cold_native.status_code == 200
    answer = outage.cold_native.json()
    assert answer["status"] == "completed"
    assert module_of(answer)["debug_status"] == "fetching_failed"
    assert [f["status"] for f in answer["stacktraces"][0]["frames"]] == ["missing"]
    assert module_of(answer)["candidates"][0]["download"]["status"] == "error"


def test_outage_cold_js_request_gets_frame_errors(outage: Outage) -> None:
    assert outage.cold_js is not None and outage.cold_js.status_code == 200
    answer = outage.cold_js.json()
    assert answer["status"] == "completed", answer
    body = js_body(release="2.0")["stacktraces"][0]["frames"]
    assert [(f["abs_path"], f["lineno"], f["colno"]) for f in answer["stacktraces"][0]["frames"]] == [
        (f["abs_path"], f["lineno"], f["colno"]) for f in body]
    assert answer["errors"]


def test_outage_service_recovers_by_itself(outage: Outage) -> None:
    assert outage.pid_after == outage.pid_before, "the service must not have been restarted"
    assert native_frames(outage.after_native) == native_frames(outage.baseline_native)
    assert js_frames(outage.after_js) == js_frames(outage.baseline_js)
    assert outage.retried_upload[0] == 0, outage.retried_upload[1] + outage.log
    frames = outage.cold_after["stacktraces"][0]["frames"]
    assert frames and {f["status"] for f in frames} == {"symbolicated"}
    assert frames[-1]["function"] == "main"
    assert "storage unavailable" in outage.log and "storage is back" in outage.log


# ---------------------------------------------------------------- torn writes to S3

_TORN_WRITER = """
import http.client, os, sys
from symbolicator.storage import S3Storage

real_send = http.client.HTTPConnection.send

def send(self, data):
    if hasattr(data, "__len__") and len(data) == 65536:  # the body: the process dies before any of it is sent
        os._exit(9)
    return real_send(self, data)

http.client.HTTPConnection.send = send
endpoint, bucket, key, access, secret = sys.argv[1:]
S3Storage(bucket, endpoint_url=endpoint, region="us-east-1", access_key=access, secret_key=secret,
          max_attempts=1).put_bytes(key, os.urandom(65536))
"""


def test_writer_killed_between_headers_and_body_leaves_no_object(seaweed: Any, s3_storage: Any) -> None:
    """SeaweedFS keeps an empty object for a PUT whose body never came; Content-MD5 makes it refuse it."""
    out = subprocess.run([sys.executable, "-c", _TORN_WRITER, seaweed.endpoint_url, s3_storage.bucket, "chunks/ab/torn",
                          seaweed.access_key, seaweed.secret_key], cwd=REPO, capture_output=True, text=True, timeout=60,
                         check=False)
    assert out.returncode == 9, out.stderr
    assert s3_storage.head("chunks/ab/torn") is None


def test_chunk_damaged_in_storage_is_dropped_and_the_retried_upload_completes(seaweed: Any, tmp_path: Path) -> None:
    """A chunk stored empty (what a store kept from an interrupted write before the fix) fails one assemble,
    is dropped, and the next upload sends it again."""
    bucket = seaweed.make_bucket(f"torn-{uuid.uuid4().hex[:12]}")
    data = COLD_ELF.read_bytes()
    first_chunk = hashlib.sha1(data[:8 * 1024 * 1024]).hexdigest()
    seaweed.client().put_object(Bucket=bucket, Key=f"chunks/{first_chunk[:2]}/{first_chunk}", Body=b"")
    svc = ServiceProcess(tmp_path, native_settings(tmp_path, storage={"backend": "s3", "s3": {
        "bucket": bucket, "endpoint_url": seaweed.endpoint_url, "region": seaweed.region}}),
        env={"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key})
    with svc:
        status, output = cli_upload(svc, COLD_ELF)
        assert status != 0 and "did not match their SHA-1 and were dropped" in output, output
        status, output = cli_upload(svc, COLD_ELF)
        assert status == 0, output + svc.log()
        frames = symbolicated(svc, "/symbolicate", native_body(COLD_ELF, ["main"]))["stacktraces"][0]["frames"]
        assert {f["status"] for f in frames} == {"symbolicated"} and frames[-1]["function"] == "main"


# ---------------------------------------------------------------- damaged cache files

@dataclass
class Damage:
    damaged_at_rest: list[Path] = field(default_factory=list)
    after_restart: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    rebuilt: list[Path] = field(default_factory=list)
    conversions: float = 0.0
    damaged_running: list[Path] = field(default_factory=list)
    while_running: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    conversions_running: float = 0.0
    log: str = ""


@pytest.fixture(scope="module")
def damage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Damage]:
    """Damage the symcache (bytes flipped, size kept) and the sourcemap cache (truncated): first while the
    service is down (a restart must not trust them), then while it runs."""
    root = tmp_path_factory.mktemp("damage")
    seen = Damage()
    native = native_body(WARM_ELF, ["checksum", "main"])
    with ServiceProcess(root, native_settings(root)) as svc:
        uploaded(svc, WARM_ELF, js_folder(root))
        check_native(symbolicated(svc, "/symbolicate", native), ["checksum", "main"])
        check_js(symbolicated(svc, "/symbolicate-js", js_body()))
        svc.stop()
        seen.damaged_at_rest = derived_caches(root / "cache")
        for path, how in zip(seen.damaged_at_rest, ("flip", "truncate")):
            corrupt(path, how)
        svc.start()
        seen.after_restart = (symbolicated(svc, "/symbolicate", native), symbolicated(svc, "/symbolicate-js", js_body()))
        seen.conversions = metric(svc, "symbolicator_native_conversions_total")
        seen.rebuilt = derived_caches(root / "cache")
        seen.damaged_running = list(seen.rebuilt)
        for path in seen.damaged_running:
            corrupt(path, "flip")
        seen.while_running = (symbolicated(svc, "/symbolicate", native), symbolicated(svc, "/symbolicate-js", js_body()))
        seen.conversions_running = metric(svc, "symbolicator_native_conversions_total")
        seen.log = svc.log_path.read_text(errors="replace")
    yield seen


def test_cache_files_damaged_at_rest_are_rebuilt_not_served(damage: Damage) -> None:
    assert len(damage.damaged_at_rest) == 2
    check_native(damage.after_restart[0], ["checksum", "main"])
    check_js(damage.after_restart[1])
    assert damage.conversions == 1
    assert len(damage.rebuilt) == 2 and not set(damage.rebuilt) & set(damage.damaged_at_rest)
    assert not any(p.exists() for p in damage.damaged_at_rest), "damaged files must leave the cache"
    assert damage.log.count("dropping damaged entry") >= 2


def test_cache_files_damaged_while_running_are_rebuilt_not_served(damage: Damage) -> None:
    """Damaged while the service has them open: found at the first request after its memo asks the store again."""
    check_native(damage.while_running[0], ["checksum", "main"])
    check_js(damage.while_running[1])
    assert damage.conversions_running == 2
    assert not any(p.exists() for p in damage.damaged_running)


# ---------------------------------------------------------------- the cache disk full

@dataclass
class DiskFull:
    filled: int = 0
    warm: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    cold_native: dict[str, Any] = field(default_factory=dict)
    cold_js: requests.Response | None = None
    restarted_warm: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    health: int = 0
    after_native: dict[str, Any] = field(default_factory=dict)
    after_js: dict[str, Any] = field(default_factory=dict)
    log: str = ""


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DiskFull]:
    """The cache folder is a 16 MiB tmpfs in a private mount namespace, filled up once the cache is warm;
    the service is restarted on the full disk (nothing it opened is in its memory any more), then it is freed."""
    root = tmp_path_factory.mktemp("diskfull")
    seen = DiskFull()
    warm = native_body(WARM_ELF, ["checksum", "main"])
    try:
        tmpfs = PrivateTmpfs(root / "cache", 16 << 20).__enter__()
    except OSError as exc:
        pytest.skip(f"no private mount namespace here: {exc}")
    try:
        with PrefixedService(root, native_settings(root), tmpfs.prefix) as svc:
            uploaded(svc, WARM_ELF, COLD_ELF, js_folder(root))
            uploaded(svc, js_folder(root / "v2"), release="2.0")
            check_native(symbolicated(svc, "/symbolicate", warm), ["checksum", "main"])
            check_js(symbolicated(svc, "/symbolicate-js", js_body()))
            seen.filled = tmpfs.fill()
            seen.warm = (symbolicated(svc, "/symbolicate", warm), symbolicated(svc, "/symbolicate-js", js_body()))
            seen.cold_native = symbolicated(svc, "/symbolicate", native_body(COLD_ELF, ["main"]))
            seen.cold_js = post(svc, "/symbolicate-js", js_body(release="2.0"))
            svc.stop()
            svc.start()
            tmpfs.fill()  # what the stopped service's SQLite gave back on its way out
            seen.restarted_warm = (symbolicated(svc, "/symbolicate", warm),
                                   symbolicated(svc, "/symbolicate-js", js_body()))
            seen.health = requests.get(f"{svc.url}/healthcheck", timeout=10).status_code
            tmpfs.free()
            seen.after_native = symbolicated(svc, "/symbolicate", native_body(COLD_ELF, ["main"]))
            seen.after_js = symbolicated(svc, "/symbolicate-js", js_body(release="2.0"))
            seen.log = svc.log_path.read_text(errors="replace")
    finally:
        tmpfs.__exit__()
    yield seen


def test_disk_full_warm_requests_are_still_served(disk_full: DiskFull) -> None:
    assert disk_full.filled > 0
    check_native(disk_full.warm[0], ["checksum", "main"])
    check_js(disk_full.warm[1])


def test_disk_full_restarted_service_serves_what_is_cached(disk_full: DiskFull) -> None:
    """Reading an entry records its access (a write): on a full disk the cache reads without it."""
    check_native(disk_full.restarted_warm[0], ["checksum", "main"])
    check_js(disk_full.restarted_warm[1])
    assert disk_full.health == 200
    assert "reading without them" in disk_full.log


def test_disk_full_cold_native_request_gets_a_module_status(disk_full: DiskFull) -> None:
    module = module_of(disk_full.cold_native)
    assert module["debug_status"] == "other"
    assert [f["status"] for f in disk_full.cold_native["stacktraces"][0]["frames"]] == ["missing"]
    assert "No space left on device" in json.dumps(module["candidates"])


def test_disk_full_cold_js_request_gets_frame_errors(disk_full: DiskFull) -> None:
    assert disk_full.cold_js is not None and disk_full.cold_js.status_code == 200
    answer = disk_full.cold_js.json()
    assert answer["status"] == "completed", answer
    assert len(answer["stacktraces"][0]["frames"]) == len(NODE_FRAMES) and answer["errors"]


def test_disk_full_then_freed_converts_again_without_restart(disk_full: DiskFull) -> None:
    frames = disk_full.after_native["stacktraces"][0]["frames"]
    assert {f["status"] for f in frames} == {"symbolicated"} and frames[-1]["function"] == "main"
    check_js(disk_full.after_js)


# ---------------------------------------------------------------- crashes mid-conversion

def test_sigkill_during_conversion_leaves_nothing_and_the_request_then_succeeds(tmp_path: Path) -> None:
    svc = ServiceProcess(tmp_path, native_settings(tmp_path)).start()
    try:
        uploaded(svc, BIG_ELF)
        body = native_body(BIG_ELF, ["fn123", "fn1400"])
        assert svc.proc is not None
        helpers = wait_for(lambda: workers(svc.proc.pid) and children(svc.proc.pid) if svc.proc else [], 30, 0.1)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post, svc, "/symbolicate", body)
            assert wait_for(lambda: converting(tmp_path / "cache"), 30), svc.log()
            svc.kill()
            with pytest.raises(requests.ConnectionError):
                pending.result()
        assert wait_for(lambda: not any(alive(p) for p in helpers), 10, 0.1), "children outlived the service"
        assert derived_caches(tmp_path / "cache") == []
        svc.start()
        assert converting(tmp_path / "cache") == [], "the restart removes the dead process's temp files"
        answer = symbolicated(svc, "/symbolicate", body)
        check_native(answer, ["fn123", "fn1400"])
        assert metric(svc, "symbolicator_native_conversions_total") == 1
    finally:
        svc.stop()


def test_worker_killed_mid_conversion_runs_the_job_again_alone_and_the_pool_restarts(tmp_path: Path) -> None:
    """A worker killed from outside (the OOM killer) may not be the job's fault: the job runs once more,
    alone (`workers.py`), and succeeds; a job that kills its worker twice fails (`test_workers.py`)."""
    svc = ServiceProcess(tmp_path, native_settings(tmp_path)).start()
    try:
        uploaded(svc, BIG_ELF)
        body = native_body(BIG_ELF, ["fn7"])
        assert svc.proc is not None
        pool_before = wait_for(lambda: workers(svc.proc.pid) if svc.proc else [], 30, 0.1)
        assert len(pool_before) == 1
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(post, svc, "/symbolicate", body)
            assert wait_for(lambda: converting(tmp_path / "cache"), 30), svc.log()
            kill(pool_before[0])
            r = pending.result()
        assert r.status_code == 200
        answer = r.json()
        assert answer["status"] == "completed"
        check_native(answer, ["fn7"])
        assert "worker process died" in svc.log()
        assert not alive(pool_before[0])
        check_native(symbolicated(svc, "/symbolicate", body), ["fn7"])
        assert metric(svc, "symbolicator_native_conversions_total") == 1
        assert wait_for(lambda: len(workers(svc.proc.pid)) == 1 if svc.proc else False, 30, 0.1)
        pool_after = workers(svc.proc.pid)
        assert len(pool_after) == 1 and pool_after != pool_before  # the quarantine worker has left
    finally:
        svc.stop()
