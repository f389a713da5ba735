"""Scenarios `kill-during-upload`, `kill-during-conversion`, `worker-kill`: SIGKILL at the worst moments.

- kill-during-upload: on SeaweedFS, `symbolicator upload` sends five debug files
  in 64 KiB chunks; the service is killed at a random moment of it (spread over
  the time a clean upload takes, so some kills land among the chunks, some while
  assembling, some after), then restarted. Afterwards nothing partial may be
  visible: every stored debug file is byte for byte one of the sources, and each
  module symbolicates as `found` or `missing`, never `malformed`; the retried
  upload completes and every module is found.
- kill-during-conversion: the service is killed while a worker builds the
  symcache of `big_elf` (~1 s of work), seen by its temp file appearing. The
  workers must leave with it, no symcache entry may exist, the restart removes
  the temp file, and the same request then succeeds with one conversion.
- worker-kill: the conversion worker itself is killed mid-conversion. The pool
  is replaced and the job runs once more, alone (a worker killed from outside
  may not be the job's fault, `service/workers.py`): the request answers with
  the module `found`, and the same request then succeeds from the cache.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from chaos.inject import RestartableSeaweed, alive, children, kill, wait_for, workers
from chaos.rig import REPO, MemorySampler, Result, pid_of, s3_env, say, service_settings
from chaos.workload import (
    BIG_ELF,
    ELF_DIR,
    TOKEN,
    converting,
    derived_caches,
    module_of,
    native_body,
    native_ok,
    uploaded,
)
from tests.support.service import ServiceProcess
from tests.support.native_service import metric

UPLOADED = [BIG_ELF, ELF_DIR / "c_gcc_O2_dwarf5", ELF_DIR / "cpp_gcc_O2_dwarf5", ELF_DIR / "rust_v0",
            ELF_DIR / "cpp_clang_O2_dwarf5"]
CHUNK = 64 * 1024
FN = "main"


def _post(url: str, scope: str, body: dict[str, Any]) -> requests.Response:
    return requests.post(f"{url}/symbolicate", params={"scope": scope}, json=body, timeout=120)


def _upload_cli(url: str, scope: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBOLICATOR_")}
    return subprocess.Popen([sys.executable, "-m", "symbolicator", "upload", "--url", url, "--token", TOKEN,
                             "--scope", scope, "--wait", "--no-progress", *map(str, UPLOADED)],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _module_statuses(url: str, scope: str) -> dict[str, str]:
    out = {}
    for path in UPLOADED:
        r = _post(url, scope, native_body(path, [FN]))
        if r.status_code != 200 or r.json().get("status") != "completed":
            out[path.name] = f"http {r.status_code} {r.json().get('status')}"
            continue
        answer = r.json()
        status = module_of(answer)["debug_status"]
        if status == "found" and not native_ok(answer, [FN]):
            status = "found, wrong frames"
        out[path.name] = status
    return out


def _states(s3: Any, scope: str) -> int:
    """How many assemble states (written last, once a file is stored and indexed) the bucket holds for `scope`."""
    return len(s3.list_objects_v2(Bucket="chaos", Prefix=f"assemble/{scope}/").get("Contents", []))


def _first_chunk(svc: ServiceProcess) -> float:
    """Wait until the service has stored a chunk more than before: the upload is under way. When."""
    before = metric(svc, "symbolicator_chunks_received_total")
    wait_for(lambda: metric(svc, "symbolicator_chunks_received_total") > before, 60, 0.02)
    return time.monotonic()


def kill_during_upload(root: Path, quick: bool) -> Result:
    rounds = 2 if quick else 8
    result = Result("kill-during-upload", f"SIGKILL of the service at a random moment of `symbolicator upload` of "
                    f"{len(UPLOADED)} debug files (64 KiB chunks, S3 on SeaweedFS), {rounds} times, each followed "
                    "by a restart and a retried upload")
    sources = {hashlib.sha1(p.read_bytes()).hexdigest() for p in UPLOADED}
    all_chunks = {hashlib.sha1(data[i:i + CHUNK]).hexdigest()
                  for data in (p.read_bytes() for p in UPLOADED) for i in range(0, len(data), CHUNK)}
    rng = random.Random(6)
    with RestartableSeaweed(root / "weed") as weed:
        weed.make_bucket("chaos")
        s3 = weed.client()
        svc = ServiceProcess(root, service_settings(root, weed, limits={"chunk_size": CHUNK}), env=s3_env(weed))
        with svc, MemorySampler(pid_of(svc)) as sampler:
            calibration = _upload_cli(svc.url, "acme/calibration")
            t0 = _first_chunk(svc)
            wait_for(lambda: _states(s3, "acme/calibration") == len(UPLOADED), 120, 0.01)
            clean_s = time.monotonic() - t0
            calibration.wait(300)
            result.figures["clean upload, first chunk to the last file stored (s)"] = round(clean_s, 2)
            for n in range(rounds):
                scope = f"acme/round{n}"
                for obj in s3.list_objects_v2(Bucket="chaos", Prefix="chunks/").get("Contents", []):
                    s3.delete_object(Bucket="chaos", Key=obj["Key"])
                upload = _upload_cli(svc.url, scope)
                _first_chunk(svc)
                delay = rng.uniform(0.0, clean_s * 1.1)
                time.sleep(delay)
                svc.kill()
                upload.wait(60)
                result.count("upload that was killed", "cli failed" if upload.returncode else "cli completed first")
                keys = [o["Key"] for o in s3.list_objects_v2(Bucket="chaos").get("Contents", [])]
                chunks = sum(k.startswith("chunks/") for k in keys)
                states = sum(k.startswith(f"assemble/{scope}/") for k in keys)
                phase = ("while chunks were sent" if chunks < len(all_chunks) else
                         "while assembling" if states < len(UPLOADED) else "after the upload was done")
                result.count("kill moment", phase)
                stored = [k for k in keys if k.startswith(f"files/{scope}/")]
                whole = all(hashlib.sha1(s3.get_object(Bucket="chaos", Key=k)["Body"].read()).hexdigest() in sources
                            for k in stored)
                result.check(f"round {n} (kill {delay:.2f} s after the first chunk, {phase}): every stored debug "
                             "file is whole "
                             f"({len(stored)} of {len(UPLOADED)} stored)", whole)
                svc.start()
                statuses = _module_statuses(svc.url, scope)
                for status in statuses.values():
                    result.count("module after the restart", status)
                result.check(f"round {n}: after the restart each module is found or missing, never broken",
                             set(statuses.values()) <= {"found", "missing"})
                retried = _upload_cli(svc.url, scope)
                output, _ = retried.communicate(timeout=300)
                result.count("retried upload", "completed" if retried.returncode == 0 else "failed")
                statuses = _module_statuses(svc.url, scope)
                for status in statuses.values():
                    result.count("module after the retried upload", status)
                if not result.check(f"round {n}: the retried upload completes and every module is found",
                                    retried.returncode == 0 and set(statuses.values()) == {"found"}):
                    result.notes.append(f"round {n}: the retried upload said: {output.strip()[-600:]!r}; "
                                        f"modules: {statuses}")
        result.memory = sampler.memory
    return result


def _native_service(root: Path, cache: str) -> ServiceProcess:
    settings = service_settings(root)
    settings["cache"] = {"dir": str(root / cache)}
    return ServiceProcess(root, settings)


def _rounds(root: Path, quick: bool, result: Result,
            one: Callable[[ServiceProcess, Path, dict[str, Any], int], None]) -> None:
    """`one(service, cache dir, body, round)` on a fresh cache each round; `big_elf` uploaded once."""
    body = native_body(BIG_ELF, ["fn123", "fn1400"])
    for n in range(2 if quick else 5):
        svc = _native_service(root, f"cache{n}")
        with svc, MemorySampler(pid_of(svc)) as sampler:
            if n == 0:
                uploaded(svc, BIG_ELF)
            one(svc, root / f"cache{n}", body, n)
        result.memory.peak_rss_mib = max(result.memory.peak_rss_mib, sampler.memory.peak_rss_mib)
        result.memory.peak_hwm_mib = max(result.memory.peak_hwm_mib, sampler.memory.peak_hwm_mib)
        result.memory.samples += sampler.memory.samples


def kill_during_conversion(root: Path, quick: bool) -> Result:
    result = Result("kill-during-conversion", "SIGKILL of the service while its worker converts `big_elf` "
                    "(2.4 MB ELF, ~1 s of DWARF work), then a restart")

    def one(svc: ServiceProcess, cache: Path, body: dict[str, Any], n: int) -> None:
        assert svc.proc is not None
        helpers = wait_for(lambda: workers(svc.proc.pid) and children(svc.proc.pid) if svc.proc else [], 30, 0.1)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_post, svc.url, "acme/web", body)
            seen = wait_for(lambda: converting(cache), 30)
            svc.kill()
            try:
                pending.result()
                result.count("request in flight at the kill", "answered before the kill")
            except requests.ConnectionError:
                result.count("request in flight at the kill", "lost: in flight when the service was killed")
        result.check(f"round {n}: killed while the symcache was being built", bool(seen))
        result.check(f"round {n}: the workers left with the service",
                     bool(wait_for(lambda: not any(alive(p) for p in helpers), 10, 0.1)))
        result.check(f"round {n}: no symcache entry after the kill", derived_caches(cache) == [])
        svc.start()
        result.check(f"round {n}: the restart removed the dead process's temp files", converting(cache) == [])
        r = _post(svc.url, "acme/web", body)
        ok = r.status_code == 200 and native_ok(r.json(), ["fn123", "fn1400"])
        result.count("same request after the restart", "symbolicated" if ok else f"http {r.status_code}")
        result.check(f"round {n}: the same request then succeeds, with one conversion",
                     ok and metric(svc, "symbolicator_native_conversions_total") == 1)

    _rounds(root, quick, result, one)
    result.notes.append("a request in flight when its service is SIGKILLed loses its connection: that is the "
                        "crash itself; what matters is what the next service finds")
    return result


def worker_kill(root: Path, quick: bool) -> Result:
    result = Result("worker-kill", "SIGKILL of the conversion worker process while it converts `big_elf`")

    def one(svc: ServiceProcess, cache: Path, body: dict[str, Any], n: int) -> None:
        assert svc.proc is not None
        before = wait_for(lambda: workers(svc.proc.pid) if svc.proc else [], 30, 0.1) or []
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(_post, svc.url, "acme/web", body)
            seen = wait_for(lambda: converting(cache), 30)
            for pid in before:
                kill(pid)
            r = pending.result()
        answer = r.json() if r.status_code == 200 else {}
        status = module_of(answer)["debug_status"] if answer.get("status") == "completed" else f"http {r.status_code}"
        frames = {f["status"] for f in answer["stacktraces"][0]["frames"]} if answer.get("stacktraces") else set()
        result.count("request whose worker was killed", f"module {status}, frames {','.join(sorted(frames))}")
        result.check(f"round {n}: killed mid-conversion; the job ran again alone and the module was `found`",
                     bool(seen) and status == "found" and frames == {"symbolicated"})
        again = _post(svc.url, "acme/web", body)
        ok = again.status_code == 200 and native_ok(again.json(), ["fn123", "fn1400"])
        result.count("same request again", "symbolicated" if ok else f"http {again.status_code}")
        after = workers(svc.proc.pid)
        result.check(f"round {n}: the pool was replaced and the retry converted and symbolicated",
                     ok and bool(after) and not set(after) & set(before)
                     and metric(svc, "symbolicator_native_conversions_total") == 1)

    _rounds(root, quick, result, one)
    say("worker-kill: done")
    return result
