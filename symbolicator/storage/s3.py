"""`S3Storage`: the `Storage` protocol on an S3-compatible bucket via boto3.

Any S3 (AWS, SeaweedFS, MinIO, Ceph) is the shared store that lets N stateless
service instances run side by side (docs/scaling.md).

Why it is built this way:

- **One client per instance, made once.** boto3 clients are thread-safe,
  sessions are not; the service calls every method through `asyncio.to_thread`,
  so many threads share this client. Its connection pool is sized for that.
- **Atomic publication is S3's own:** a PUT, or a multipart upload's final
  CompleteMultipartUpload, makes the whole object visible at once. `put_file`
  streams through boto3's managed transfer (multipart above 8 MiB).
- **Downloads are one GET streamed to a temp file beside the target**, then
  renamed: one request reads one version of the object (ranged parallel parts
  could mix two versions if the key is overwritten meanwhile), and a failed
  download leaves nothing at the target.
- **Failing fast:** a short connect timeout and few retries, so an unreachable
  store becomes `StorageUnavailable` (HTTP 503) in seconds, not minutes.
  Errors are mapped at this boundary, cause kept: 404/NoSuchKey → `ObjectNotFound`;
  connection errors, timeouts and any 5xx (S3's SlowDown, and the 500
  InternalError a store answers while it shuts down or loses its backends) →
  `StorageUnavailable`, since retrying later is the cure; any other failure →
  `StorageError`.
- **`list` sorts.** AWS lists in byte order, but SeaweedFS walks its directory
  tree (`a/b` before `a-c`), so keys are gathered and sorted: memory grows with
  the number of keys under the prefix, which callers keep narrow.
- **Checksums only when required**, as many S3-compatible stores reject the
  CRC headers newer botocore sends by default; chunks are content-addressed
  and verified by SHA-1 above this layer anyway. The exception is `put_bytes`,
  which sends Content-MD5: a writer killed after the request headers but before
  the body (a SIGKILL mid-upload) made SeaweedFS store an *empty* object at the
  key, and a chunk that exists is never sent again. With the digest the store
  refuses the truncated body instead.
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Hashable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import boto3
from boto3.exceptions import Boto3Error
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

from symbolicator.errors import ObjectNotFound, StorageError, StorageUnavailable
from symbolicator.storage.base import ObjectInfo, check_key

READ_CHUNK = 1 << 20
MULTIPART_BYTES = 8 << 20
MIN_PART_BYTES = 5 << 20
_NOT_FOUND_CODES = frozenset({"404", "NoSuchKey", "NotFound"})
_UNAVAILABLE_CODES = frozenset({"500", "502", "503", "504", "SlowDown", "ServiceUnavailable", "InternalError"})


class S3Storage:
    """Objects at `prefix + key` in `bucket`; credentials from boto3's chain unless given.

    Timeouts are in seconds; `max_attempts` counts the first try. `prefix` gets a
    trailing `/` if it lacks one, so `"tenant"` and `"tenant/"` mean the same.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
        max_attempts: int = 3,
        max_pool_connections: int = 32,
        list_page_size: int = 1000,
    ) -> None:
        if not bucket:
            raise StorageError("S3 bucket name is empty")
        if prefix:
            prefix = prefix.rstrip("/") + "/"
            check_key(prefix + "x")
        if (access_key is None) != (secret_key is None):
            raise StorageError("give both S3 access_key and secret_key, or neither")
        self.bucket = bucket
        self.prefix = prefix
        self.endpoint_url = endpoint_url
        self.list_page_size = list_page_size
        config = Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_pool_connections,
            s3={"addressing_style": "path"} if endpoint_url else None,
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        self._client: Any = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint_url,
            region_name=region,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._transfer = TransferConfig(
            multipart_threshold=MULTIPART_BYTES,
            multipart_chunksize=MULTIPART_BYTES,
            max_concurrency=4,
        )

    def __repr__(self) -> str:
        where = f" at {self.endpoint_url}" if self.endpoint_url else ""
        return f"S3Storage(s3://{self.bucket}/{self.prefix}{where})"

    def check(self) -> None:
        """Fail now if the bucket cannot be reached or does not exist (for start-up and health checks)."""
        with self._errors(None):
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if _code(e) in _NOT_FOUND_CODES:
                    raise StorageError(f"S3 bucket {self.bucket!r} does not exist") from e
                raise

    def head(self, key: str) -> ObjectInfo | None:
        full = self._full(key)
        with self._errors(key):
            try:
                resp = self._client.head_object(Bucket=self.bucket, Key=full)
            except ClientError as e:
                if _code(e) in _NOT_FOUND_CODES:
                    return None
                raise
        return ObjectInfo(key, int(resp["ContentLength"]))

    def get_bytes(self, key: str, max_bytes: int | None = None) -> bytes:
        full = self._full(key)
        with self._errors(key):
            resp = self._client.get_object(Bucket=self.bucket, Key=full)
            body = resp["Body"]
            try:
                size = int(resp.get("ContentLength", -1))
                if max_bytes is not None and size > max_bytes:
                    raise StorageError(
                        f"object {key!r} is {size} bytes, over the limit of {max_bytes}", key
                    )
                data: bytes = body.read() if max_bytes is None else body.read(max_bytes + 1)
            finally:
                body.close()
        if max_bytes is not None and len(data) > max_bytes:
            raise StorageError(f"object {key!r} is over the limit of {max_bytes} bytes", key)
        return data

    def get_to_path(self, key: str, path: Path) -> ObjectInfo:
        full = self._full(key)
        path = Path(path)
        with self._errors(key):
            resp = self._client.get_object(Bucket=self.bucket, Key=full)
        body = resp["Body"]
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.part")
        try:
            with self._errors(key):
                path.parent.mkdir(parents=True, exist_ok=True)
                with open(tmp, "wb") as out:
                    out.writelines(body.iter_chunks(READ_CHUNK))
                    size = out.tell()
                expected = int(resp.get("ContentLength", size))
                if size != expected:
                    raise StorageError(f"short read of {key!r}: {size} of {expected} bytes", key)
                os.replace(tmp, path)
        finally:
            body.close()
            with suppress(OSError):
                tmp.unlink()
        return ObjectInfo(key, size)

    def put_bytes(self, key: str, data: bytes | bytearray) -> None:
        """One PUT with Content-MD5: the store refuses a body that did not arrive whole (see the module notes)."""
        full = self._full(key)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode()
        with self._errors(key):
            self._client.put_object(Bucket=self.bucket, Key=full, Body=data, ContentMD5=md5)

    def put_file(self, key: str, path: Path) -> None:
        full = self._full(key)
        if not Path(path).is_file():
            raise StorageError(f"cannot store {path} at {key!r}: not a file", key)
        with self._errors(key):
            self._client.upload_file(str(path), self.bucket, full, Config=self._transfer)

    def compose(self, key: str, sources: Sequence[str]) -> None:
        """Part-copy inside S3 when every part but the last meets S3's 5 MiB minimum, else stream."""
        full = self._full(key)
        sizes = []
        for src in sources:
            info = self.head(src)
            if info is None:
                raise ObjectNotFound(f"no object at {src!r} in {self!r}", src)
            sizes.append(info.size)
        if len(sources) < 2 or any(size < MIN_PART_BYTES for size in sizes[:-1]):
            self._compose_through(key, sources)
            return
        with self._errors(key):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
            try:
                with ThreadPoolExecutor(max_workers=4) as pool:
                    parts = list(pool.map(lambda n: self._copy_part(full, upload_id, n + 1, sources[n]),
                                          range(len(sources))))
                self._client.complete_multipart_upload(
                    Bucket=self.bucket, Key=full, UploadId=upload_id, MultipartUpload={"Parts": parts})
            except BaseException:
                with suppress(ClientError, BotoCoreError):
                    self._client.abort_multipart_upload(Bucket=self.bucket, Key=full, UploadId=upload_id)
                raise

    def start_compose(self, key: str) -> S3PartCopier:
        """A multipart upload at `key`, to be filled part by part as the sources appear (pipelined uploads)."""
        full = self._full(key)
        with self._errors(key):
            upload_id = self._client.create_multipart_upload(Bucket=self.bucket, Key=full)["UploadId"]
        return S3PartCopier(self, key, full, upload_id)

    def _copy_part(self, full: str, upload_id: str, number: int, source: str) -> dict[str, Any]:
        resp = self._client.upload_part_copy(
            Bucket=self.bucket, Key=full, UploadId=upload_id, PartNumber=number,
            CopySource={"Bucket": self.bucket, "Key": self._full(source)})
        return {"PartNumber": number, "ETag": resp["CopyPartResult"]["ETag"]}

    def _compose_through(self, key: str, sources: Sequence[str]) -> None:
        with tempfile.TemporaryDirectory(prefix="compose-") as tmp:
            whole = Path(tmp) / "whole"
            with open(whole, "wb") as out:
                for src in sources:
                    part = Path(tmp) / "part"
                    self.get_to_path(src, part)
                    with open(part, "rb") as f:
                        shutil.copyfileobj(f, out, READ_CHUNK)
            self.put_file(key, whole)

    def delete(self, key: str) -> None:
        full = self._full(key)
        with self._errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=full)

    def version(self, key: str) -> Hashable | None:
        """None: only a request to S3 could tell."""
        return None

    def list(self, prefix: str) -> Iterator[str]:
        if prefix:
            check_key(prefix + "x")
        cut = len(self.prefix)
        keys: list[str] = []
        with self._errors(None):
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket,
                Prefix=self.prefix + prefix,
                PaginationConfig={"PageSize": self.list_page_size},
            )
            for page in pages:
                keys.extend(obj["Key"][cut:] for obj in page.get("Contents", ()))
        keys.sort()
        return iter(keys)

    def _full(self, key: str) -> str:
        return self.prefix + check_key(key)

    @contextmanager
    def _errors(self, key: str | None) -> Iterator[None]:
        """Translate boto3's exceptions into ours, keeping the cause."""
        try:
            yield
        except StorageError:
            raise
        except (ClientError, BotoCoreError, Boto3Error) as e:
            raise _translate(e, key, self) from e
        except OSError as e:
            raise StorageError(f"local file error for {key!r}: {e}", key) from e


def _code(e: ClientError) -> str:
    return str(e.response.get("Error", {}).get("Code", ""))


def _translate(e: BaseException, key: str | None, storage: S3Storage) -> StorageError:
    """Our exception for a boto3/s3transfer failure; walks the cause chain (s3transfer wraps)."""
    what = f"{key!r}" if key is not None else "listing"
    where = f"{storage!r}"
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ClientError):
            code = _code(cause)
            if code in _NOT_FOUND_CODES:
                return ObjectNotFound(f"no object at {what} in {where}", key)
            status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if code in _UNAVAILABLE_CODES or (isinstance(status, int) and status >= 500):
                return StorageUnavailable(f"S3 unavailable for {what} ({code}) in {where}", key)
            return StorageError(f"S3 error {code or status} for {what} in {where}: {cause}", key)
        if isinstance(cause, (BotoConnectionError, HTTPClientError)):
            return StorageUnavailable(f"S3 unreachable for {what} in {where}: {cause}", key)
        if isinstance(cause, NoCredentialsError):
            return StorageError(f"no S3 credentials for {where}: {cause}", key)
        cause = cause.__cause__ or cause.__context__
    return StorageError(f"S3 failure for {what} in {where}: {e!r}", key)


class S3PartCopier:
    """`compose` spread over time: parts are copied inside S3 as they are added, and nothing is visible at the key
    until `complete` (which moves no bytes). Parts but the last must be ≥ 5 MiB, as for `compose`."""

    def __init__(self, storage: S3Storage, key: str, full: str, upload_id: str) -> None:
        self.storage = storage
        self.key = key
        self._full = full
        self._upload_id = upload_id
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="part-copy")
        self._parts: dict[int, Any] = {}
        self.completed = False

    def copy(self, number: int, source: str) -> None:
        self._parts[number] = self._pool.submit(self.storage._copy_part, self._full, self._upload_id, number, source)

    def complete(self, count: int) -> bool:
        """Blocking: publish parts 1…count at the key; False (and nothing published) if a part is missing or failed."""
        try:
            if set(self._parts) != set(range(1, count + 1)):
                return False
            parts = [self._parts[n].result() for n in range(1, count + 1)]
            with self.storage._errors(self.key):
                self.storage._client.complete_multipart_upload(
                    Bucket=self.storage.bucket, Key=self._full, UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts})
            self._upload_id = ""
            self.completed = True
            return True
        except (ClientError, BotoCoreError, StorageError):
            return False
        finally:
            self.abort()

    def abort(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        if self._upload_id:
            with suppress(ClientError, BotoCoreError):
                self.storage._client.abort_multipart_upload(Bucket=self.storage.bucket, Key=self._full,
                                                            UploadId=self._upload_id)
            self._upload_id = ""
