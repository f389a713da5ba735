"""The storage backends the settings ask for, behind the `OutageGuard` the service relies on:
the uploads' store (`open_storage`) and the shared cache's (`open_shared_storage`)."""

from __future__ import annotations

from pathlib import Path

from symbolicator.config import StorageSettings
from symbolicator.storage.base import Storage
from symbolicator.storage.outage import OutageGuard


def open_storage(settings: StorageSettings) -> Storage:
    if settings.backend == "s3":
        from symbolicator.storage.s3 import S3Storage

        s3 = settings.s3
        return OutageGuard(S3Storage(bucket=s3.bucket, prefix=s3.prefix, endpoint_url=s3.endpoint_url,
                                     region=s3.region))
    from symbolicator.storage.local import LocalStorage

    settings.local_dir.mkdir(parents=True, exist_ok=True)
    return OutageGuard(LocalStorage(settings.local_dir))


def open_shared_storage(location: str, endpoint_url: str | None = None, region: str | None = None) -> Storage | None:
    """The store of the shared cache `location` names (`s3://bucket/prefix` or a folder); None when it
    is empty. Short timeouts: the shared cache is an optimisation, a slow store must not hold a request."""
    if not location:
        return None
    if location.startswith("s3://"):
        from symbolicator.storage.s3 import S3Storage

        bucket, _, prefix = location[len("s3://"):].partition("/")
        return OutageGuard(S3Storage(bucket, prefix=prefix, endpoint_url=endpoint_url, region=region,
                                     connect_timeout=1.0, max_attempts=2))
    from symbolicator.storage.local import LocalStorage

    return OutageGuard(LocalStorage(Path(location)))
