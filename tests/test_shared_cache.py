"""The shared cache (`cache.shared`, issue 11 item 3): what one instance converted, another does not convert.

Real service processes on one real SeaweedFS: uploads and the shared cache live in
one bucket, each instance has its own cache folder. Conversions and shared-cache
outcomes are read from each instance's `/metrics`; answers are checked against
llvm-symbolizer (native) and the frames `node --enable-source-maps` printed (JS).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from bench.counting_proxy import CountingProxy
from symbolicator import keys
from symbolicator.native.symcache import SYMCACHE_VERSION
from tests.support.seaweed import SeaweedServer
from tests.support.service import ServiceProcess, free_port
from tests.support.native_service import (
    TOKEN,
    by_original_index,
    elf_info,
    elf_module,
    llvm_symbolize,
    metric,
    needs_llvm,
    ours,
    upload,
)
from tests.test_two_instances import upload_bundle

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/cpp_gcc_O3_dwarf5"
NODE = json.loads((REPO / "tests/fixtures/js/expected/esbuild.node.json").read_text())["frames"]
BASE = 0x5555_0000_0000
SHARED_PREFIX = "shared-cache"

pytestmark = [pytest.mark.s3, needs_llvm]

Instance = Callable[..., ServiceProcess]


def settings(root: Path, storage: dict[str, Any], shared: str, **cache: Any) -> dict[str, Any]:
    return {"storage": storage, "cache": {"dir": str(root / "cache"), "shared": shared, **cache},
            "auth": {"tokens": {TOKEN: {"scopes": ["acme/web"], "rights": ["upload", "symbolicate"]}}},
            "workers": 1}


@pytest.fixture(scope="module")
def bucket(seaweed: SeaweedServer) -> str:
    return seaweed.make_bucket(f"shared-{os.urandom(4).hex()}")


@pytest.fixture(scope="module")
def instances(seaweed: SeaweedServer, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Instance]:
    """Start an instance on the bucket (uploads at its root, the shared cache under `SHARED_PREFIX`)."""
    env = {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
           "AWS_DEFAULT_REGION": "us-east-1"}
    storage = {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": seaweed.endpoint_url,
                                       "region": "us-east-1"}}
    started: list[ServiceProcess] = []

    def start(**cache: Any) -> ServiceProcess:
        root = tmp_path_factory.mktemp("instance")
        svc = ServiceProcess(root, settings(root, storage, f"s3://{bucket}/{SHARED_PREFIX}", **cache), env=env)
        started.append(svc.start())
        return svc

    yield start
    for svc in started:
        svc.stop()


@pytest.fixture(scope="module")
def converted_by_a(instances: Instance, tmp_path_factory: pytest.TempPathFactory) -> ServiceProcess:
    """Instance A, after it has converted the debug file and the source map and published both."""
    a = instances()
    upload(a, ELF)
    upload_bundle(a, tmp_path_factory.mktemp("bundle"), "1.0")
    check_answers(a)
    assert conversions(a) == (1, 1)
    wait_for(lambda: shared_events(a).get("published", 0) == 2, "A published both conversions")
    return a


def addresses() -> list[int]:
    start, end = elf_info(ELF)["text"]
    return list(range(start, end, max(1, (end - start) // 40)))[:40]


def check_answers(svc: ServiceProcess) -> None:
    """One native and one JS event, each checked against the independent tools."""
    addrs = addresses()
    body = {"stacktraces": [{"frames": [{"instruction_addr": hex(BASE + x), "adjust_instruction_addr": False}
                                        for x in addrs]}],
            "modules": [elf_module(ELF, image_addr=BASE)]}
    answer = requests.post(f"{svc.url}/symbolicate", params={"scope": "acme/web"}, json=body, timeout=120).json()
    assert answer["status"] == "completed" and answer["modules"][0]["debug_status"] == "found", answer
    got = by_original_index(answer["stacktraces"][0]["frames"])
    expected = llvm_symbolize(ELF, addrs)
    assert [ours(got.get(i, [])) for i, exp in enumerate(expected) if exp] == [exp for exp in expected if exp]

    js_body = {"release": "1.0", "scraping": {"enabled": False}, "stacktraces": [{"frames": [
        {"abs_path": "https://shop.example/static/app.js", "lineno": f["line"], "colno": f["column"]}
        for f in NODE]}]}
    js = requests.post(f"{svc.url}/symbolicate-js", params={"scope": "acme/web"}, json=js_body, timeout=120).json()
    assert js["status"] == "completed", js
    for frame, want in zip(js["stacktraces"][0]["frames"], NODE, strict=True):
        assert frame["abs_path"].endswith(want["original"]["file"]), frame
        assert (frame["lineno"], frame["colno"]) == (want["original"]["line"], want["original"]["column"])


def conversions(svc: ServiceProcess) -> tuple[float, float]:
    return (metric(svc, "symbolicator_native_conversions_total"), metric(svc, "symbolicator_js_conversions_total"))


def shared_events(svc: ServiceProcess) -> dict[str, float]:
    text = requests.get(f"{svc.url}/metrics", timeout=10).text
    events: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith('symbolicator_shared_cache_total{event="'):
            name, value = line[len('symbolicator_shared_cache_total{event="'):].split('"} ')
            events[name] = float(value)
    return events


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.1)


def shared_objects(seaweed: SeaweedServer, bucket: str) -> dict[str, bytes]:
    client = seaweed.client()
    listed = client.list_objects_v2(Bucket=bucket, Prefix=f"{SHARED_PREFIX}/")
    return {o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", [])}


def test_b_answers_what_a_converted_without_converting(converted_by_a: ServiceProcess,
                                                       instances: Instance) -> None:
    b = instances()
    check_answers(b)
    assert conversions(b) == (0, 0)
    assert shared_events(b) == {"hit": 2}


def test_a_damaged_shared_object_is_converted_again_and_replaced(
        converted_by_a: ServiceProcess, instances: Instance, seaweed: SeaweedServer, bucket: str) -> None:
    published = shared_objects(seaweed, bucket)
    assert sorted(k.split("/")[3] for k in published) == ["smcache", "symcache"]
    client = seaweed.client()
    for key, data in published.items():
        if "/symcache/" in key:  # one byte flipped in the middle
            middle = len(data) // 2
            client.put_object(Bucket=bucket, Key=key, Body=data[:middle] + bytes([data[middle] ^ 1]) + data[middle + 1:])
        else:  # cut short
            client.put_object(Bucket=bucket, Key=key, Body=data[:-100])

    c = instances()
    check_answers(c)
    assert conversions(c) == (1, 1)
    wait_for(lambda: shared_events(c).get("published", 0) == 2, "C published its conversions")
    assert shared_events(c) == {"damaged": 2, "published": 2}
    assert shared_objects(seaweed, bucket) == published  # conversions are deterministic: the same bytes again


def test_publishing_does_not_delay_the_answer(seaweed: SeaweedServer, tmp_path: Path) -> None:
    """The shared store is reached through a proxy that holds the symcache's PUT: the answer comes
    while the upload waits, and the upload completes once let go."""
    bucket = seaweed.make_bucket(f"shared-{os.urandom(4).hex()}")
    key = keys.shared_cache(keys.cache_key("symcache", SYMCACHE_VERSION, hashlib.sha1(ELF.read_bytes()).hexdigest(),
                                           "x86_64"))
    let_go = threading.Event()
    with CountingProxy(seaweed.endpoint_url) as proxy:
        held = proxy.hold(f"/{bucket}/{SHARED_PREFIX}/{key}", let_go.is_set, timeout_s=120, method="PUT")
        storage = {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": seaweed.endpoint_url,
                                           "region": "us-east-1"}}
        svc = ServiceProcess(tmp_path, settings(tmp_path, storage, f"s3://{bucket}/{SHARED_PREFIX}",
                                                shared_endpoint_url=proxy.url),
                             env={"AWS_ACCESS_KEY_ID": seaweed.access_key,
                                  "AWS_SECRET_ACCESS_KEY": seaweed.secret_key}).start()
        try:
            upload(svc, ELF)
            upload_bundle(svc, tmp_path, "1.0")
            check_answers(svc)  # answered while the symcache's upload is held
            wait_for(lambda: shared_events(svc).get("published") == 1, "the sourcemap cache (not held) published")
            assert proxy.count(held.path, "PUT") == 1 and held.outcomes == []  # the symcache's: in flight
            let_go.set()
            wait_for(lambda: shared_events(svc).get("published") == 2, "the held upload completed")
            assert held.outcomes == ["released"]
        finally:
            let_go.set()
            svc.stop()


def test_with_the_shared_store_down_instances_convert_locally_and_keep_answering(
        tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    storage = {"backend": "local", "local_dir": str(tmp_path / "uploads")}
    svc = ServiceProcess(tmp_path, settings(tmp_path, storage, "s3://down/shared", shared_endpoint_url=dead),
                         env={"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}).start()
    try:
        upload(svc, ELF)
        upload_bundle(svc, tmp_path, "1.0")
        started = time.monotonic()
        check_answers(svc)
        check_answers(svc)
        assert time.monotonic() - started < 30
        assert conversions(svc) == (1, 1)
        wait_for(lambda: shared_events(svc).get("publish_failed", 0) == 2, "both uploads failed")
        events = shared_events(svc)
        assert events.get("error", 0) == 2 and "hit" not in events, events
    finally:
        svc.stop()
