"""Issue 17 item 9: `/healthcheck` stays cheap; `GET /ready` says which dependency is down.

Real services on a real SeaweedFS: ready; an S3 endpoint on a port nobody listens
on (the store unreachable); a bucket that does not exist yet.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import requests

from tests.support.service import free_port


def s3_settings(seaweed: Any, bucket: str, endpoint: str, tmp_path: Path) -> dict[str, Any]:
    return {"storage": {"backend": "s3", "s3": {"bucket": bucket, "endpoint_url": endpoint, "region": "us-east-1"}},
            "cache": {"dir": str(tmp_path / "cache")}}


def aws_env(seaweed: Any) -> dict[str, str]:
    return {"AWS_ACCESS_KEY_ID": seaweed.access_key, "AWS_SECRET_ACCESS_KEY": seaweed.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1"}


def test_ready_on_a_reachable_store(seaweed: Any, service_factory: Any, tmp_path: Path) -> None:
    bucket = f"ready-{os.urandom(4).hex()}"
    seaweed.make_bucket(bucket)
    svc = service_factory(s3_settings(seaweed, bucket, seaweed.endpoint_url, tmp_path), env=aws_env(seaweed))
    r = requests.get(svc.url + "/ready", timeout=30)
    assert r.status_code == 200, r.text
    answer = r.json()
    assert answer["status"] == "ready"
    assert answer["checks"]["storage"] == {"where": f"s3://{bucket}/", "error": None}
    assert answer["checks"]["cache"]["error"] is None


def test_unreachable_store_is_named_while_healthcheck_stays_ok(seaweed: Any, service_factory: Any,
                                                               tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    svc = service_factory(s3_settings(seaweed, "gone", dead, tmp_path), env=aws_env(seaweed))
    assert requests.get(svc.url + "/healthcheck", timeout=5).text == "ok"  # cheap: touches nothing
    r = requests.get(svc.url + "/ready", timeout=30)
    assert r.status_code == 503
    detail = r.json()["detail"]
    assert detail.startswith("not ready: storage s3://gone/:"), detail
    assert "cache" not in detail  # only what is down is named


def test_missing_bucket_is_named(seaweed: Any, service_factory: Any, tmp_path: Path) -> None:
    bucket = f"never-made-{os.urandom(3).hex()}"
    svc = service_factory(s3_settings(seaweed, bucket, seaweed.endpoint_url, tmp_path), env=aws_env(seaweed))
    r = requests.get(svc.url + "/ready", timeout=30)
    assert r.status_code == 503 and r.json()["detail"].startswith(f"not ready: storage s3://{bucket}/:")
    seaweed.make_bucket(bucket)
    assert requests.get(svc.url + "/ready", timeout=30).status_code == 200  # ready once the bucket exists
