"""The service as users run it on a shared store: a subprocess on a real SeaweedFS, counted at S3 if asked.

Shared by `bench/coalescing.py` and `bench/cache_scale.py` (issue 5, items 4 and
6). `service_on_s3` starts SeaweedFS on loopback, optionally the counting proxy
in front of it (`bench/counting_proxy.py`), and the service with S3 storage
pointed at the proxy or at SeaweedFS; everything stops on the way out, whatever
happened. `scrape` reads the service's `/metrics` into plain numbers, and
`run_plan` fires requests from a separate client process (`bench/plan_client.py`).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench.counting_proxy import CountingProxy
from bench.inputs import REPO
from tests.support.seaweed import SeaweedServer
from tests.support.service import ServiceProcess

BUCKET = "bench"


@dataclass
class Rig:
    """A running service on S3; `proxy` is None when requests to S3 are not counted."""

    service: ServiceProcess
    weed: SeaweedServer
    bucket: str
    proxy: CountingProxy | None

    @property
    def url(self) -> str:
        return self.service.url

    def object_path(self, key: str) -> str:
        """The request path of a storage key as the S3 client sends it (path style, no prefix)."""
        return f"/{self.bucket}/{key}"

    def read_object(self, key: str) -> bytes:
        """An object straight from SeaweedFS (around the proxy, so it is not counted)."""
        return bytes(self.weed.client().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def list_keys(self, prefix: str) -> list[str]:
        """The keys under `prefix` (an index folder's entries), straight from SeaweedFS."""
        listing = self.weed.client().list_objects_v2(Bucket=self.bucket, Prefix=prefix)
        return [str(o["Key"]) for o in listing.get("Contents", [])]


@contextmanager
def service_on_s3(work: Path, settings: dict[str, Any], counting: bool, weed: SeaweedServer | None = None,
                  bucket: str = BUCKET, env: dict[str, str] | None = None) -> Iterator[Rig]:
    """The service with `settings` on S3 storage in a new `bucket` (+ the counting proxy in front).

    Starts its own SeaweedFS unless given one (the tests share the session's); `env` is added to
    the service's environment.
    """
    if weed is None:
        (work / "seaweed").mkdir(parents=True, exist_ok=True)
        with SeaweedServer(data_dir=work / "seaweed") as own, service_on_s3(work, settings, counting, own,
                                                                            bucket, env) as rig:
            yield rig
        return
    weed.make_bucket(bucket)
    proxy = CountingProxy(weed.endpoint_url).start() if counting else None
    try:
        endpoint = proxy.url if proxy is not None else weed.endpoint_url
        service_env = {"AWS_ACCESS_KEY_ID": weed.access_key, "AWS_SECRET_ACCESS_KEY": weed.secret_key,
                       "AWS_DEFAULT_REGION": weed.region, **(env or {})}
        storage = {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": endpoint, "region": weed.region}}
        with ServiceProcess(work, {"storage": storage, **settings}, env=service_env) as svc:
            yield Rig(svc, weed, bucket, proxy)
    finally:
        if proxy is not None:
            proxy.stop()


def scrape(url: str) -> dict[str, float]:
    """`/metrics` as `{'name{label="v",…}': value}` (labels sorted; `_total` kept as Prometheus writes it)."""
    with urllib.request.urlopen(url + "/metrics", timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = float(s.value)
    return out


def delta(after: dict[str, float], before: dict[str, float], name: str) -> float:
    return after.get(name, 0.0) - before.get(name, 0.0)


async def run_plan(work: Path, name: str, base_url: str, requests: list[dict[str, Any]],
                   concurrency: int) -> list[dict[str, Any]]:
    """Send `requests` (`{"path", "body"}`) from a separate client process; its results in plan order."""
    plan = work / f"{name}.plan.json"
    out = work / f"{name}.results.json"
    plan.write_text(json.dumps({"base_url": base_url, "concurrency": concurrency, "requests": requests}))
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "bench.plan_client", str(plan), str(out),
                                                cwd=REPO, stderr=subprocess.PIPE)
    try:
        _, err = await proc.communicate()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        raise RuntimeError(f"the load client failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
    results: list[dict[str, Any]] = json.loads(out.read_text())
    return results
