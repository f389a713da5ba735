"""Upload throughput: a ≥ 1 GB debug file through the chunked protocol into SeaweedFS.

    python -m bench.upload [--size-mib 1100] [--keep]

Builds a real ELF (gcc, with a build-id) carrying a ~1 GB `.debug_bench`
section of DWARF-like bytes (real debug sections of a fixture, repeated, with a
counter every 4 KiB so no two chunks are equal and gzip sees realistic entropy).
Then:
1. starts SeaweedFS and the service (S3 backend) on loopback,
2. uploads with the project's own client (the protocol sentry-cli speaks),
3. reports MB/s per phase and the service's peak RSS.

Server phases come from the service's own `/metrics` counters. The client's
phases are timed here. Writes `bench/results/upload.md`.
Targets (issue 2): ≥ 60 MB/s end to end, service peak RSS ≤ 200 MB. Issue 11.4 (pipelined uploads): end to end
≥ 0.85× the rate of the send-chunks step of the same run, service peak RSS ≤ 200 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import numpy as np
import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from symbolicator.uploader import Client, prepare_file  # noqa: E402
from tests.support.seaweed import SeaweedServer  # noqa: E402
from tests.support.service import ServiceProcess  # noqa: E402

FIXTURE = REPO / "tests/fixtures/native/out/elf/cpp_gcc_O2_dwarf5"
MiB = 1024 * 1024
SERVER_PHASES = ("chunk_gunzip", "chunk_sha1", "chunk_put", "pipeline_feed", "pipeline_finish", "pipeline_compose",
                 "assemble_get", "assemble_hash_write", "publish")


def dwarf_like_payload(path: Path, size: int) -> None:
    """Real debug-section bytes, tiled, with a unique counter every 4 KiB."""
    with tempfile.TemporaryDirectory() as tmp:
        block = b""
        for section in (".debug_info", ".debug_line", ".debug_str", ".debug_abbrev", ".debug_rnglists"):
            out = Path(tmp) / "s"
            subprocess.run(["objcopy", "-O", "binary", f"--only-section={section}", str(FIXTURE), str(out)],
                           check=True, capture_output=True)
            block += out.read_bytes()
    base = np.frombuffer(block, dtype=np.uint8)
    step = 64 * MiB
    counter = 0
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(step, size - written)
            buf = np.resize(base, n).copy()
            pages = buf[: n - n % 4096].reshape(-1, 4096)
            ids = np.arange(counter, counter + len(pages), dtype=np.uint64)
            pages[:, :8] = ids.view(np.uint8).reshape(-1, 8)
            counter += len(pages)
            f.write(buf.tobytes())
            written += n


def build_elf(work: Path, size: int) -> Path:
    src = work / "big.c"
    src.write_text("int main(void) { return 0; }\n")
    base = work / "big_base"
    subprocess.run(["gcc", "-g", "-O2", "-Wl,--build-id=sha1", str(src), "-o", str(base)], check=True)
    payload = work / "payload.bin"
    dwarf_like_payload(payload, size)
    out = work / "big.debug"
    subprocess.run(["objcopy", "--add-section", f".debug_bench={payload}",
                    "--set-section-flags", ".debug_bench=readonly,debug", str(base), str(out)], check=True)
    payload.unlink()
    return out


def metric(text: str, name: str, label: str) -> float:
    m = re.search(rf'^{name}\{{phase="{label}"\}} (\S+)$', text, re.M)
    return float(m.group(1)) if m else 0.0


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def upload(url: str, path: Path, compress: bool) -> dict[str, float]:
    times: dict[str, float] = {}
    timeout = aiohttp.ClientTimeout(total=None, sock_read=600)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        client = Client(session, url, None, compress=compress)
        t0 = time.perf_counter()
        options = await client.options("bench")
        prepared = await asyncio.to_thread(prepare_file, path, int(options["chunkSize"]))
        t1 = time.perf_counter()
        answers = await client.assemble_difs("bench", "big", [prepared])
        missing = set(answers[prepared.sha1]["missingChunks"])
        await client.upload_chunks(options, [prepared], missing, lambda n: None)
        t2 = time.perf_counter()
        while True:
            state = (await client.assemble_difs("bench", "big", [prepared]))[prepared.sha1]
            if state["state"] not in ("not_found", "created", "assembling"):
                break
            await asyncio.sleep(0.2)
        t3 = time.perf_counter()
        if state["state"] != "ok":
            raise SystemExit(f"upload failed: {state}")
    return {"client_hash": t1 - t0, "send_chunks": t2 - t1, "assemble_wait": t3 - t2, "total": t3 - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1100, help="payload size (default %(default)s MiB)")
    parser.add_argument("--keep", action="store_true", help="keep bench/work/upload afterwards")
    parser.add_argument("--no-compression", action="store_true", help="send chunks as plain `file` parts")
    args = parser.parse_args()
    work = REPO / "bench/work/upload"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    print("building the debug file …", flush=True)
    elf = build_elf(work, args.size_mib * MiB)
    size = elf.stat().st_size
    print(f"{elf.name}: {size / MiB:.0f} MiB", flush=True)
    (work / "seaweed").mkdir()
    with SeaweedServer(data_dir=work / "seaweed") as weed:
        weed.make_bucket("bench")
        env = {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key,
               "AWS_DEFAULT_REGION": "us-east-1"}
        svc = ServiceProcess(work, {
            "storage": {"backend": "s3", "s3": {"bucket": "bench", "endpoint_url": weed.endpoint_url,
                                                "region": "us-east-1"}},
            "cache": {"dir": str(work / "cache")}, "limits": {"max_file_bytes": 8 * 1024 * MiB},
        }, env=env)
        with svc:
            assert svc.proc is not None
            times = asyncio.run(upload(svc.url, elf, not args.no_compression))
            text = requests.get(svc.url + "/metrics", timeout=10).text
            rss = peak_rss_mib(svc.proc.pid)
    rows = [("client: hash file + chunks (SHA-1)", times["client_hash"]),
            ("client+server: send chunks (gzip, POST, gunzip, SHA-1, put)", times["send_chunks"]),
            ("server: assemble until ok", times["assemble_wait"])]
    server = [(p, metric(text, "symbolicator_upload_phase_seconds_total", p),
               metric(text, "symbolicator_upload_phase_bytes_total", p)) for p in SERVER_PHASES]
    mbps = size / 1e6 / times["total"]
    ratio = times["send_chunks"] / times["total"]
    lines = [
        "# Upload benchmark", "",
        f"`python -m bench.upload --size-mib {args.size_mib}{' --no-compression' if args.no_compression else ''}` on {platform.node()} ({os.cpu_count()} cores, "
        f"Python {platform.python_version()}), {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
        f"A {size / 1e6:.0f} MB ELF debug file, chunked upload into SeaweedFS on loopback (S3 backend).", "",
        "| wall-clock step | seconds | MB/s |", "| --- | ---: | ---: |",
        *[f"| {name} | {t:.2f} | {size / 1e6 / t:.0f} |" for name, t in rows],
        f"| **end to end** | **{times['total']:.2f}** | **{mbps:.0f}** |",
        f"| end to end rate ÷ send-chunks rate | | **{ratio:.2f}×** |", "",
        "Server phases (summed over worker threads, from `/metrics`):", "",
        "| phase | seconds | MB | MB/s |", "| --- | ---: | ---: | ---: |",
        *[f"| {p} | {s:.2f} | {b / 1e6:.0f} | {b / 1e6 / s if s else float('nan'):.0f} |" for p, s, b in server],
        "", f"Service peak RSS (VmHWM): **{rss:.0f} MiB**.", "",
        f"Targets: end to end ≥ 60 MB/s — {'PASS' if mbps >= 60 else 'FAIL'}; "
        f"peak RSS ≤ 200 MB — {'PASS' if rss * 1.048576 <= 200 else 'FAIL'}; "
        f"end to end ≥ 0.85× send chunks (issue 11.4) — {'PASS' if ratio >= 0.85 else 'FAIL'}.", "",
    ]
    report = "\n".join(lines)
    print(report)
    (REPO / "bench/results").mkdir(exist_ok=True)
    (REPO / "bench/results/upload.md").write_text(report)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
