"""The storage backend the settings ask for, behind the `OutageGuard` the service relies on."""

from __future__ import annotations

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
