"""Fetch one relative path from one source into a local file: filesystem, HTTP or S3.

Each transport answers the same way: the file is written whole at `dest` (temporary name,
then rename) or a `DownloadMiss` says why not, in the words of a Symbolicator candidate
(`notfound`, `noperm`, `error`; `timeout` is an `error` the lookup counts separately).
Nothing here knows about layouts or object files.

- **filesystem**: the path is resolved with every symlink followed and must still lie under
  the source's resolved root; the final open uses `O_NOFOLLOW`, so a symlink swapped in
  afterwards is not followed either. A directory at the path is taken as a `.dSYM` bundle
  (LLDB's UUID folders link to bundles) and its DWARF file is used.
- **http**: the shared `Fetcher` (timeouts, size cap, address policy, deny list).
- **s3**: boto3 through `S3Storage`, in a thread, one client per source config (`S3Clients`; clients are
  thread-safe and costly to make). An endpoint sent in a request is read the way botocore
  reads it, and its client connects only to addresses the fetcher's policy admits, checked
  on the socket as an HTTP source's are (`s3_guard`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
import uuid
from collections import OrderedDict
from pathlib import Path
from urllib.parse import quote, urlsplit

from botocore.exceptions import ClientError, ConnectTimeoutError, ReadTimeoutError

from symbolicator import fetch_tenants
from symbolicator.errors import DownloadMiss, FetchError, ObjectNotFound, StorageError
from symbolicator.fetch import Fetcher, forbidden_cause
from symbolicator.fetch_policy import DEFAULT_PORTS, AddressPolicy, parse_ip
from symbolicator.native.objects import find_dsym_files
from symbolicator.sources.config import FilesystemSource, HttpSource, S3Source
from symbolicator.sources.s3_guard import endpoint_problem, guard_client
from symbolicator.storage.s3 import S3Storage

MAX_S3_CLIENTS = 64
_NOPERM_S3 = frozenset({"403", "AccessDenied", "Forbidden", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                        "AllAccessDisabled", "AccountProblem"})
_FETCH_STATUS = {"not_found": "notfound", "permission_denied": "noperm"}


def location(source: FilesystemSource | HttpSource | S3Source, rel: str) -> str:
    """The URI a candidate reports for `rel` on `source` (also the HTTP URL fetched)."""
    if isinstance(source, FilesystemSource):
        return (source.path / rel).as_uri()
    if isinstance(source, HttpSource):
        return source.url.rstrip("/") + "/" + quote(rel, safe="/")
    prefix = f"{source.prefix}/" if source.prefix else ""
    return f"s3://{source.bucket}/{prefix}{rel}"


async def download(source: FilesystemSource | HttpSource | S3Source, rel: str, dest: Path, *,
                   fetcher: Fetcher, max_bytes: int, s3_clients: S3Clients | None = None) -> None:
    """Write the object at `rel` on `source` to `dest`; raises DownloadMiss."""
    if isinstance(source, FilesystemSource):
        await asyncio.to_thread(_copy_local, source.path, rel, dest, max_bytes)
    elif isinstance(source, HttpSource):
        try:
            await fetcher.fetch(location(source, rel), headers=dict(source.headers), max_bytes=max_bytes, dest=dest)
        except FetchError as e:
            status = _FETCH_STATUS.get(e.reason, "error")
            raise DownloadMiss(status, None if status == "notfound" else f"{e.reason}: {e}",
                               timeout=e.reason == "timeout") from e
    else:
        if source.from_request and source.endpoint_url:
            _check_endpoint(source.endpoint_url, fetcher)
        request = fetch_tenants.current()
        refusal = request.admit(location(source, rel)) if request is not None else None
        if refusal is not None:
            raise DownloadMiss("error", f"other: {refusal}")
        storage = (s3_clients if s3_clients is not None else S3Clients()).get(source, fetcher)
        key = f"{source.prefix}/{rel}" if source.prefix else rel
        await asyncio.to_thread(_get_s3, storage, key, dest, max_bytes)


def _copy_local(root: Path, rel: str, dest: Path, max_bytes: int) -> None:
    root_real = os.path.realpath(root)
    real = os.path.realpath(os.path.join(root_real, *rel.split("/")))
    if os.path.commonpath([root_real, real]) != root_real:
        raise DownloadMiss("noperm", "the path leads outside the source's folder")
    if os.path.isdir(real):
        inner = [p for p in find_dsym_files(Path(real))
                 if os.path.commonpath([root_real, os.path.realpath(p)]) == root_real]
        if not inner:
            raise DownloadMiss("notfound")
        real = os.path.realpath(inner[0])
    try:
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except (FileNotFoundError, NotADirectoryError):
        raise DownloadMiss("notfound") from None
    except PermissionError as e:
        raise DownloadMiss("noperm", f"cannot read: {e.strerror}") from None
    except OSError as e:
        raise DownloadMiss("error", f"cannot open: {e.strerror or e}") from None
    with os.fdopen(fd, "rb") as src:
        size = os.fstat(src.fileno()).st_size
        if size > max_bytes:
            raise DownloadMiss("error", f"too_large: {size} bytes, over the {max_bytes} byte limit")
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(src, out, 1 << 20)
            os.replace(tmp, dest)
        except OSError as e:
            raise DownloadMiss("error", f"cannot copy: {e.strerror or e}") from None
        finally:
            tmp.unlink(missing_ok=True)


class S3Clients:
    """S3 clients for symbol sources, one per exact config and address policy, made once each; the
    oldest is dropped past `max_clients`. The native service owns one for its lifetime; a caller
    without one gets a client per download."""

    def __init__(self, max_clients: int = MAX_S3_CLIENTS) -> None:
        self.max_clients = max_clients
        self._clients: OrderedDict[tuple[S3Source, AddressPolicy | None], S3Storage] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._clients)

    def get(self, source: S3Source, fetcher: Fetcher) -> S3Storage:
        """The client for `source`: a request's source gets one whose sockets only open to addresses
        the fetcher's policy admits."""
        policy = fetcher.policy if source.from_request else None
        key = (source, policy)
        with self._lock:
            storage = self._clients.get(key)
            if storage is not None:
                self._clients.move_to_end(key)
                return storage
        storage = S3Storage(source.bucket, endpoint_url=source.endpoint_url, region=source.region,
                            access_key=source.access_key, secret_key=source.secret_key,
                            connect_timeout=fetcher.settings.connect_timeout_s,
                            read_timeout=fetcher.settings.read_timeout_s)
        if policy is not None:
            guard_client(storage._client, policy)
        with self._lock:
            self._clients[key] = storage
            while len(self._clients) > self.max_clients:
                self._clients.popitem(last=False)
        return storage


def _get_s3(storage: S3Storage, key: str, dest: Path, max_bytes: int) -> None:
    try:
        head = storage.head(key)
        if head is None:
            raise DownloadMiss("notfound")
        if head.size > max_bytes:
            raise DownloadMiss("error", f"too_large: {head.size} bytes, over the {max_bytes} byte limit")
        storage.get_to_path(key, dest)
    except ObjectNotFound:
        raise DownloadMiss("notfound") from None
    except StorageError as e:
        raise _s3_miss(e) from None


def _s3_miss(e: StorageError) -> DownloadMiss:
    forbidden = forbidden_cause(e)
    if forbidden is not None:
        return DownloadMiss("error", f"invalid_host: {forbidden}")
    cause: BaseException | None = e
    while cause is not None:
        if isinstance(cause, ClientError):
            code = str(cause.response.get("Error", {}).get("Code", ""))
            if code in _NOPERM_S3:
                return DownloadMiss("noperm", f"S3 refused access ({code})")
        if isinstance(cause, (ReadTimeoutError, ConnectTimeoutError)):
            return DownloadMiss("error", f"timeout: {cause}", timeout=True)
        cause = cause.__cause__ or cause.__context__
    return DownloadMiss("error", str(e))


def _check_endpoint(endpoint_url: str, fetcher: Fetcher) -> None:
    """Refuse a request's S3 endpoint that cannot be valid or is a forbidden IP literal, before any lookup.

    Names are not resolved here: the guarded client resolves each one once, when it connects,
    and connects only to an answer the policy admits (`s3_guard`).
    """
    problem = endpoint_problem(endpoint_url)
    if problem is not None:
        raise DownloadMiss("error", f"invalid_host: {problem}")
    parts = urlsplit(endpoint_url)
    host = parts.hostname or ""
    port = parts.port or DEFAULT_PORTS[parts.scheme.lower()]
    ip = parse_ip(host)
    refusal = None if ip is None else fetcher.policy.refusal(ip, port)
    if refusal:
        raise DownloadMiss("error", f"invalid_host: S3 endpoint {host} is {ip} ({refusal})")
