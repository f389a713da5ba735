"""Every resource cap of `limits.*`, hit on purpose against the real service process.

Each cap must answer precisely (a 4xx naming the setting, a 503 with
`Retry-After`, a `timeout` envelope, a per-frame `malformed`) and leave the
service serving the next request. Caps tested elsewhere, not repeated here:
gzip bombs in chunk uploads (`test_uploads_bad_input.py::test_gzip_bomb_chunk_is_refused`)
and zip-bomb artifact bundles (`test_uploads_bad_input.py::test_zip_bomb_bundle`,
`limits.max_bundle_uncompressed_bytes`).

Busy jobs are made busy for real: JS scraping against a loopback website whose
answer waits on a gate (concurrency) or never comes (job timeout). The
decompression bombs are real ELF files, see `tests/fixtures/limits/make_fixtures.py`.
"""

from __future__ import annotations

import asyncio
import io
import json
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from elftools.elf.elffile import ELFFile

from symbolicator.config import describe, load_settings
from symbolicator.errors import ConfigError, MalformedObject
from symbolicator.native.dwarf import elf_dwarf_sections
from tests.support.service import ServiceProcess
from tests.support.websites import Website
from tests.support.native_service import (
    IMAGE_ADDR,
    TOKEN,
    elf_info,
    elf_module,
    native_settings,
    symbolicate,
    upload,
)

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures"
BOMBS = FIXTURES / "limits"
ZLIB_ELF = FIXTURES / "native" / "out" / "elf" / "cpp_gcc_zlib"
APPLE = FIXTURES / "apple"
MAX_BODY = 2 * 1024 * 1024
MAX_FRAMES = 8
DEFAULT_DEPTH = 64


@pytest.fixture(scope="module")
def svc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    root = tmp_path_factory.mktemp("limits")
    settings = native_settings(root, limits={"max_body_bytes": MAX_BODY, "max_frames_per_request": MAX_FRAMES},
                               scraping={"enabled": False})
    with ServiceProcess(root, settings) as service:
        yield service


def still_serving(svc: ServiceProcess) -> None:
    """Health check and a real (small) symbolication both answer after the refusal."""
    assert requests.get(f"{svc.url}/healthcheck", timeout=10).text == "ok"
    r = symbolicate(svc, native_body([1]))
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text


def native_body(per_trace: list[int], **extra: Any) -> dict[str, Any]:
    traces = [{"frames": [{"instruction_addr": hex(0x1000 + 16 * i)} for i in range(n)]} for n in per_trace]
    return {"stacktraces": traces, "modules": [], **extra}


def js_body(per_trace: list[int], **extra: Any) -> dict[str, Any]:
    traces = [{"frames": [{"abs_path": "app:///static/app.js", "lineno": 1, "colno": 1 + i} for i in range(n)]}
              for n in per_trace]
    return {"stacktraces": traces, **extra}


def post(svc: ServiceProcess, path: str, body: bytes) -> requests.Response:
    return requests.post(f"{svc.url}{path}", params={"scope": "acme/web"}, data=body,
                         headers={"Content-Type": "application/json"}, timeout=60)


def crash_report_frames() -> int:
    """Frames in `app-arm64.crash`, as its generator recorded them (not as our parser reads them)."""
    expected = json.loads((APPLE / "expected.json").read_text())
    return sum(len(t["frames"]) for t in expected["threads"])


def nested(depth: int) -> dict[str, Any]:
    """A JS body nested `depth` levels deep: body → stacktraces → trace → frames → frame → nested…"""
    value: Any = 1
    for _ in range(depth - 5):
        value = [value]
    return {"stacktraces": [{"frames": [{"abs_path": "app:///a.js", "lineno": 1, "colno": 1, "nested": value}]}]}


# ---------------------------------------------------------------- settings


def test_new_caps_have_defaults_env_names_and_are_logged() -> None:
    defaults = load_settings(env={}).limits
    assert (defaults.max_frames_per_request, defaults.max_json_depth) == (10_000, 64)
    assert defaults.max_decompressed_section_bytes == 4 * 1024**3
    env = {"SYMBOLICATOR_LIMITS_MAX_FRAMES_PER_REQUEST": "500", "SYMBOLICATOR_LIMITS_MAX_JSON_DEPTH": "32",
           "SYMBOLICATOR_LIMITS_MAX_DECOMPRESSED_SECTION_BYTES": "512 MiB"}
    s = load_settings(env=env)
    assert (s.limits.max_frames_per_request, s.limits.max_json_depth) == (500, 32)
    assert s.limits.max_decompressed_section_bytes == 512 * 1024**2
    assert describe(s)["limits"]["max_json_depth"] == 32


@pytest.mark.parametrize("key, value, message", [
    ("MAX_JSON_DEPTH", "255", "at most 254"),
    ("MAX_JSON_DEPTH", "0", "at least 1"),
    ("MAX_FRAMES_PER_REQUEST", "0", "at least 1"),
    ("MAX_CONCURRENT_JOBS", "0", "at least 1"),
    ("MAX_DECOMPRESSED_SECTION_BYTES", "0", "at least 1"),
    ("JOB_TIMEOUT_S", "0", "more than 0"),
])
def test_caps_that_would_refuse_everything_or_let_500s_through_are_config_errors(
        key: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=f"limits.{key.lower()}: .*{message}"):
        load_settings(env={f"SYMBOLICATOR_LIMITS_{key}": value})


# ---------------------------------------------------------------- body size


@pytest.mark.parametrize("endpoint", ["/symbolicate", "/symbolicate-js", "/applecrashreport"])
def test_body_over_the_limit_is_413_and_the_service_keeps_serving(svc: ServiceProcess, endpoint: str) -> None:
    padding = "x" * (MAX_BODY + 4096)
    if endpoint == "/applecrashreport":
        r = requests.post(f"{svc.url}{endpoint}", params={"scope": "acme/web"}, timeout=60,
                          files={"apple_crash_report": ("big.crash", padding.encode())})
    else:
        r = post(svc, endpoint, json.dumps(native_body([1], padding=padding)).encode())
    assert r.status_code == 413, r.text
    assert "limits.max_body_bytes" in r.json()["detail"]
    still_serving(svc)


# ---------------------------------------------------------------- frames per request


@pytest.mark.parametrize("make", [native_body, js_body], ids=["native", "js"])
def test_frames_over_the_limit_are_413_summed_over_stack_traces(
        svc: ServiceProcess, make: Callable[[list[int]], dict[str, Any]]) -> None:
    endpoint = "/symbolicate" if make is native_body else "/symbolicate-js"
    too_many = post(svc, endpoint, json.dumps(make([5, MAX_FRAMES - 5 + 1])).encode())
    assert too_many.status_code == 413, too_many.text
    detail = too_many.json()["detail"]
    assert "limits.max_frames_per_request" in detail and f"{MAX_FRAMES + 1} frames" in detail
    at_limit = post(svc, endpoint, json.dumps(make([5, MAX_FRAMES - 5])).encode())
    assert at_limit.status_code == 200 and at_limit.json()["status"] == "completed", at_limit.text
    assert sum(len(t["frames"]) for t in at_limit.json()["stacktraces"]) >= MAX_FRAMES


def test_crash_report_with_more_frames_than_the_limit_is_413(svc: ServiceProcess) -> None:
    frames = crash_report_frames()
    assert frames > MAX_FRAMES
    r = requests.post(f"{svc.url}/applecrashreport", params={"scope": "acme/web"}, timeout=60,
                      files={"apple_crash_report": ("app.crash", (APPLE / "app-arm64.crash").read_bytes())})
    assert r.status_code == 413, r.text
    assert f"{frames} frames" in r.json()["detail"] and "limits.max_frames_per_request" in r.json()["detail"]
    still_serving(svc)


# ---------------------------------------------------------------- JSON depth


def test_json_at_the_depth_limit_is_served_one_deeper_is_400(svc: ServiceProcess) -> None:
    at_limit = post(svc, "/symbolicate-js", json.dumps(nested(DEFAULT_DEPTH)).encode())
    assert at_limit.status_code == 200 and at_limit.json()["status"] == "completed", at_limit.text
    deeper = post(svc, "/symbolicate-js", json.dumps(nested(DEFAULT_DEPTH + 1)).encode())
    assert deeper.status_code == 400, deeper.text
    assert "limits.max_json_depth" in deeper.json()["detail"]
    still_serving(svc)


def test_brackets_inside_strings_do_not_count_as_depth(svc: ServiceProcess) -> None:
    body = native_body([1], note="[" * 500 + '\\"{{{' + "\\" * 3, other="]" * 500)
    r = post(svc, "/symbolicate", json.dumps(body).encode())
    assert r.status_code == 200 and r.json()["status"] == "completed", r.text


@pytest.mark.parametrize("body", [
    b"[" * 1025 + b"]" * 1025,                           # past orjson's own 1024
    b'{"stacktraces": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b"[" * 600_000 + b"]" * 600_000,                     # over 1 MiB: checked in a thread
], ids=["1025", "100000", "600000-over-1MiB"])
def test_very_deep_json_is_400_not_500(svc: ServiceProcess, body: bytes) -> None:
    for endpoint in ("/symbolicate", "/symbolicate-js"):
        r = post(svc, endpoint, body)
        assert r.status_code == 400, r.text
        assert "limits.max_json_depth" in r.json()["detail"]
    still_serving(svc)


def test_every_json_body_is_depth_checked(svc: ServiceProcess) -> None:
    """Not only symbolication: the upload API's JSON bodies and a crash report's JSON fields too."""
    deep = b"[" * 100 + b"]" * 100
    assemble = requests.post(f"{svc.url}/api/0/projects/acme/web/files/difs/assemble/", data=deep, timeout=30,
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert assemble.status_code == 400 and "limits.max_json_depth" in assemble.json()["detail"]
    report = requests.post(f"{svc.url}/applecrashreport", params={"scope": "acme/web"}, timeout=60, files={
        "apple_crash_report": ("app.crash", (APPLE / "app-arm64.crash").read_bytes()),
        "options": (None, deep)})
    assert report.status_code == 400 and "field `options`" in report.json()["detail"]


# ---------------------------------------------------------------- decompression bombs in DWARF


@pytest.mark.parametrize("name", ["zlib_claims_8gib", "zdebug_claims_8gib", "zlib_inflates_past_claim",
                                  "zstd_inflates_past_claim"])
def test_compressed_dwarf_bomb_is_a_malformed_module(svc: ServiceProcess, name: str) -> None:
    bomb = BOMBS / name
    upload(svc, bomb)
    info = elf_info(bomb)
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(IMAGE_ADDR + info["text"][0] + 4 - info["vmaddr"])}]}],
            "modules": [elf_module(bomb)], "options": {"dif_candidates": True}}
    answer = symbolicate(svc, body).json()
    assert answer["status"] == "completed", answer
    assert answer["stacktraces"][0]["frames"][0]["status"] == "malformed"
    assert answer["modules"][0]["debug_status"] == "malformed"
    assert answer["modules"][0]["candidates"][0]["debug"]["status"] == "malformed"
    upload(svc, ZLIB_ELF)
    good = symbolicate(svc, {**body, "modules": [elf_module(ZLIB_ELF)]}).json()
    assert good["modules"][0]["debug_status"] == "found", good
    assert good["stacktraces"][0]["frames"][0]["status"] == "symbolicated"


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a big pytest
# process would report the parent's size.
_PEAK_RSS = """
import re, sys
from symbolicator.errors import MalformedObject
from symbolicator.native.symcache_build import build
try:
    build(sys.argv[1])
    print("built")
except MalformedObject as exc:
    print("malformed:", exc)
status = open("/proc/self/status").read()
print(int(re.search(r"VmHWM:\\s+(\\d+) kB", status).group(1)) * 1024)
"""


def test_zstd_bomb_never_inflates_in_memory() -> None:
    """91 KB whose zstd frame header states (and holds) 1 GiB: the converter's peak memory stays small.

    Run in a child process so its peak resident size is its own. zstd's
    one-shot `decompress` trusts the frame header and inflated the whole GiB.
    """
    bomb = BOMBS / "zstd_inflates_past_claim"
    assert bomb.stat().st_size < 128 * 1024
    out = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(bomb)], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout.splitlines()
    assert out[0].startswith("malformed:") and "differs from its header" in out[0]
    assert int(out[1]) < 300 * 1024 * 1024, f"peak RSS {int(out[1]) >> 20} MiB"


def _debug_info_claim(data: bytes) -> int:
    """`Elf64_Chdr.ch_size` of `.debug_info`, read with pyelftools' section table and struct."""
    section = ELFFile(io.BytesIO(data)).get_section_by_name(".debug_info")
    assert section is not None
    return int(struct.unpack_from("<Q", data, section["sh_offset"] + 8)[0])


def test_decompressed_section_cap_is_a_parameter_of_the_engine() -> None:
    data = ZLIB_ELF.read_bytes()
    claim = _debug_info_claim(data)
    sections = elf_dwarf_sections(ELFFile(io.BytesIO(data)), data, max_section_bytes=claim)
    assert len(sections["debug_info"]) == claim
    with pytest.raises(MalformedObject, match=f"over the {claim - 1} byte limit"):
        elf_dwarf_sections(ELFFile(io.BytesIO(data)), data, max_section_bytes=claim - 1)


def test_configured_section_cap_makes_a_real_file_malformed(service_factory: Any, tmp_path: Path) -> None:
    claim = _debug_info_claim(ZLIB_ELF.read_bytes())
    svc = service_factory(native_settings(tmp_path, limits={"max_decompressed_section_bytes": claim - 1}))
    upload(svc, ZLIB_ELF)
    info = elf_info(ZLIB_ELF)
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(IMAGE_ADDR + info["text"][0] + 4 - info["vmaddr"])}]}],
            "modules": [elf_module(ZLIB_ELF)]}
    answer = symbolicate(svc, body).json()
    assert answer["modules"][0]["debug_status"] == "malformed", answer


# ---------------------------------------------------------------- concurrent jobs and job time


def js_service(service_factory: Any, tmp_path: Path, **limits: Any) -> ServiceProcess:
    settings = {"storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
                "cache": {"dir": str(tmp_path / "cache")}, "workers": 1, "limits": limits,
                "fetch": {"allow_private_addresses": True, "connect_timeout_s": 5.0, "read_timeout_s": 60.0,
                          "total_timeout_s": 120.0}}
    return service_factory(settings)  # type: ignore[no-any-return]


def scrape_body(url: str) -> dict[str, Any]:
    return {"stacktraces": [{"frames": [{"abs_path": url, "lineno": 1, "colno": 1}]}],
            "scraping": {"enabled": True, "allowed_origins": ["127.0.0.1"]}}


async def submit(session: aiohttp.ClientSession, svc: ServiceProcess, body: dict[str, Any],
                 timeout: str = "0") -> tuple[int, dict[str, str], dict[str, Any]]:
    async with session.post(f"{svc.url}/symbolicate-js", params={"timeout": timeout}, json=body) as r:
        return r.status, dict(r.headers), await r.json()


async def poll(session: aiohttp.ClientSession, svc: ServiceProcess, request_id: str) -> dict[str, Any]:
    async with session.get(f"{svc.url}/requests/{request_id}") as r:
        assert r.status == 200, await r.text()
        answer: dict[str, Any] = await r.json()
        return answer


async def wait_until(condition: Callable[[], bool], what: str, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)


async def test_jobs_over_the_limit_get_503_with_retry_after(service_factory: Any, tmp_path: Path) -> None:
    svc = js_service(service_factory, tmp_path, max_concurrent_jobs=2)
    gate = asyncio.Event()
    async with Website() as site, aiohttp.ClientSession() as session:
        for i in range(3):
            site.add_gate(f"/held/{i}.js", gate, body=b"function f(){}\n")
        pending = []
        for i in range(2):
            status, _, answer = await submit(session, svc, scrape_body(site.url(f"/held/{i}.js")))
            assert (status, answer["status"]) == (200, "pending"), answer
            pending.append(answer["request_id"])
        await wait_until(lambda: site.in_flight == 2, "both jobs fetching from the held website")
        status, headers, answer = await submit(session, svc, scrape_body(site.url("/held/2.js")))
        assert status == 503, answer
        assert int(headers["Retry-After"]) > 0
        assert "concurrent" in answer["detail"]
        async with session.get(f"{svc.url}/healthcheck") as r:
            assert await r.text() == "ok"
        gate.set()
        for request_id in pending:
            assert (await poll(session, svc, request_id))["status"] == "completed"
        status, _, answer = await submit(session, svc, scrape_body(site.url("/held/2.js")), timeout="60")
        assert (status, answer["status"]) == (200, "completed"), answer


async def test_job_over_its_time_limit_ends_timeout_and_the_service_keeps_serving(
        service_factory: Any, tmp_path: Path) -> None:
    svc = js_service(service_factory, tmp_path, job_timeout_s=1.0)
    async with Website() as site, aiohttp.ClientSession() as session:
        site.add_hang("/hang/app.js")
        site.add_body("/ok/app.js", b"function f(){}\n", content_type="application/javascript")
        status, _, answer = await submit(session, svc, scrape_body(site.url("/hang/app.js")))
        assert (status, answer["status"]) == (200, "pending"), answer
        request_id = answer["request_id"]
        assert await poll(session, svc, request_id) == {"status": "timeout"}
        assert await poll(session, svc, request_id) == {"status": "timeout"}
        status, _, answer = await submit(session, svc, scrape_body(site.url("/ok/app.js")), timeout="60")
        assert (status, answer["status"]) == (200, "completed"), answer
