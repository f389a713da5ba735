"""One contract for every `Storage` backend, run on a local folder and on a real SeaweedFS.

The service must not care which backend it has, so each behaviour it relies on
is tested once, parametrized over both: whole-or-nothing publication, ordering
and completeness of `list`, errors that say what happened. A few tests follow
that only make sense for one backend (a killed writer on disk, an unreachable
S3 endpoint).
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import pytest

from symbolicator.errors import ObjectNotFound, StorageError, StorageUnavailable
from symbolicator.storage import LocalStorage, ObjectInfo, S3Storage, Storage
from tests.support.seaweed import SeaweedServer, free_ports

REPO = Path(__file__).resolve().parent.parent
BIG_BYTES = 30 * 1024 * 1024


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def storage(request: pytest.FixtureRequest) -> Storage:
    backend: Storage = request.getfixturevalue(f"{request.param}_storage")
    return backend


def write_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def leftovers(folder: Path) -> list[str]:
    """Temp files a download may have left beside its target."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".part"))


def test_bytes_roundtrip(storage: Storage) -> None:
    key = "files/acme/web/ab/cdef0123/debuginfo"
    storage.put_bytes(key, b"\x7fELF payload")
    storage.put_bytes("empty", b"")

    assert storage.head(key) == ObjectInfo(key, 12)
    assert storage.get_bytes(key) == b"\x7fELF payload"
    assert storage.get_bytes("empty") == b""
    assert storage.head("empty") == ObjectInfo("empty", 0)


def test_file_roundtrip(storage: Storage, tmp_path: Path) -> None:
    src = write_file(tmp_path / "src.bin", bytes(range(256)) * 100)
    storage.put_file("bundles/acme/web/1234", src)

    target = tmp_path / "out" / "nested" / "copy.bin"
    info = storage.get_to_path("bundles/acme/web/1234", target)

    assert info == ObjectInfo("bundles/acme/web/1234", 25600)
    assert target.read_bytes() == src.read_bytes()
    assert leftovers(target.parent) == []


def test_missing_key(storage: Storage, tmp_path: Path) -> None:
    """Absent keys, including the "folders" above a stored key, which are not objects."""
    storage.put_bytes("chunks/ab/present", b"x")
    target = tmp_path / "out.bin"

    for key in ["chunks/ab/missing", "chunks/ab", "chunks"]:
        assert storage.head(key) is None
        with pytest.raises(ObjectNotFound):
            storage.get_bytes(key)
        with pytest.raises(ObjectNotFound):
            storage.get_to_path(key, target)
    assert not target.exists()
    assert leftovers(tmp_path) == []


def test_large_file_roundtrip(storage: Storage, tmp_path: Path) -> None:
    data = os.urandom(BIG_BYTES)
    src = write_file(tmp_path / "big.dsym", data)
    storage.put_file("files/acme/ios/0f/big/debuginfo", src)

    target = tmp_path / "download" / "big.dsym"
    info = storage.get_to_path("files/acme/ios/0f/big/debuginfo", target)

    assert info.size == BIG_BYTES
    assert storage.head("files/acme/ios/0f/big/debuginfo") == info
    assert hashlib.sha1(target.read_bytes()).digest() == hashlib.sha1(data).digest()


def test_overwrite_replaces_whole_object(storage: Storage, tmp_path: Path) -> None:
    storage.put_bytes("assemble/acme/state.json", b"x" * 5000)
    storage.put_bytes("assemble/acme/state.json", b'{"state":"ok"}')
    assert storage.get_bytes("assemble/acme/state.json") == b'{"state":"ok"}'

    storage.put_file("assemble/acme/state.json", write_file(tmp_path / "s", b"from a file"))
    assert storage.get_bytes("assemble/acme/state.json") == b"from a file"
    assert storage.head("assemble/acme/state.json") == ObjectInfo("assemble/acme/state.json", 11)


def test_list_is_lexicographic_and_prefix_exact(storage: Storage) -> None:
    # `-` and `.` sort before `/`: a tree walk that visits folder `a` first gets this wrong.
    keys = ["idx/a-c", "idx/a.b", "idx/a/b", "idx/a/b-c", "idx/a/b.d", "idx/a0", "idx/ab/x", "idx/b"]
    others = ["id", "idy/z", "idw"]
    for key in reversed(keys + others):
        storage.put_bytes(key, b"1")

    assert list(storage.list("idx/")) == sorted(keys)
    assert list(storage.list("idx/a")) == sorted(k for k in keys if k.startswith("idx/a"))
    assert list(storage.list("idx/a/")) == ["idx/a/b", "idx/a/b-c", "idx/a/b.d"]
    assert list(storage.list("idx/ab")) == ["idx/ab/x"]
    assert list(storage.list("")) == sorted(keys + others)
    assert list(storage.list("nothing/")) == []


def test_list_many_keys_complete(storage: Storage) -> None:
    """Keys over several S3 pages (pages shrunk from 1000 to 100 to keep the test quick)."""
    if isinstance(storage, S3Storage):
        storage.list_page_size = 100
    keys = [f"chunks/{i % 7:02x}/{i:06d}" for i in range(350)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda k: storage.put_bytes(k, b""), keys))

    assert list(storage.list("chunks/")) == sorted(keys)
    assert list(storage.list("chunks/03/")) == sorted(k for k in keys if k.startswith("chunks/03/"))


def test_delete(storage: Storage) -> None:
    storage.put_bytes("index/acme/debug-id/x.json", b"{}")
    storage.delete("index/acme/debug-id/x.json")

    assert storage.head("index/acme/debug-id/x.json") is None
    assert list(storage.list("index/")) == []
    storage.delete("index/acme/debug-id/x.json")
    storage.delete("never/was/here")


BAD_KEYS = ["../x", "a/../../x", "/abs", "a\\b", "a/./b", "a\0b", "", "a//b", "a/", "..", "."]
BAD_PREFIXES = ["../", "/abs", "a/./", "a\\", "a\0"]


def test_invalid_keys_rejected(storage: Storage, tmp_path: Path) -> None:
    """Every method refuses keys that could escape the root, before touching anything."""
    src = write_file(tmp_path / "f", b"data")
    for key in BAD_KEYS:
        calls: dict[str, Callable[[], object]] = {
            "head": partial(storage.head, key),
            "get_bytes": partial(storage.get_bytes, key),
            "get_to_path": partial(storage.get_to_path, key, tmp_path / "out"),
            "put_bytes": partial(storage.put_bytes, key, b"data"),
            "put_file": partial(storage.put_file, key, src),
            "delete": partial(storage.delete, key),
        }
        for name, call in calls.items():
            with pytest.raises(StorageError) as caught:
                call()
            assert type(caught.value) is StorageError, f"{name}({key!r})"
    for prefix in BAD_PREFIXES:
        with pytest.raises(StorageError):
            list(storage.list(prefix))
    assert list(storage.list("")) == []
    assert not (tmp_path / "out").exists()


def test_get_bytes_over_limit(storage: Storage) -> None:
    storage.put_bytes("index/acme/big.json", b"{" + b" " * 98 + b"}")

    with pytest.raises(StorageError) as caught:
        storage.get_bytes("index/acme/big.json", max_bytes=99)
    assert not isinstance(caught.value, ObjectNotFound)
    assert len(storage.get_bytes("index/acme/big.json", max_bytes=100)) == 100


def test_put_file_missing_source(storage: Storage, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        storage.put_file("x/y", tmp_path / "does-not-exist")
    assert storage.head("x/y") is None


def test_concurrent_writers_and_readers_see_whole_values(storage: Storage) -> None:
    """Eight writers race on one key while a reader polls it: every read is one writer's value."""
    key = "assemble/acme/race.json"
    values = [bytes([i]) * (256 * 1024 + i) for i in range(8)]
    stop = threading.Event()
    seen: list[bytes] = []

    def read_until_stopped() -> None:
        while not stop.is_set():
            try:
                seen.append(storage.get_bytes(key))
            except ObjectNotFound:
                pass

    reader = threading.Thread(target=read_until_stopped)
    reader.start()
    try:
        for _ in range(3):
            with ThreadPoolExecutor(len(values)) as pool:
                list(pool.map(lambda v: storage.put_bytes(key, v), values))
    finally:
        stop.set()
        reader.join()

    final = storage.get_bytes(key)
    assert final in values
    assert all(value in values for value in seen)
    assert list(storage.list("assemble/")) == [key]


# --- LocalStorage only ---------------------------------------------------------------

_KILLED_WRITER = """
import sys
from pathlib import Path
from symbolicator.storage import LocalStorage
LocalStorage(Path(sys.argv[1])).put_file("files/acme/big/debuginfo", Path(sys.argv[2]))
"""


def _open_fifo_for_writing(fifo: Path, child: subprocess.Popen[bytes]) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            assert child.poll() is None, "writer process died before opening its input"
            time.sleep(0.02)
            continue
        os.set_blocking(fd, True)
        return fd
    raise AssertionError("writer process never opened its input")


def test_local_killed_writer_leaves_nothing_visible(tmp_path: Path) -> None:
    """SIGKILL a process in the middle of put_file: the key stays absent, the temp file is swept."""
    root = tmp_path / "uploads"
    LocalStorage(root)
    fifo = tmp_path / "input.fifo"
    os.mkfifo(fifo)
    child = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(root), str(fifo)], cwd=REPO)
    fd = _open_fifo_for_writing(fifo, child)
    try:
        os.write(fd, b"\x00" * (4 << 20))
        deadline = time.monotonic() + 10
        while sum(p.stat().st_size for p in (root / ".tmp").iterdir()) < (2 << 20):
            assert time.monotonic() < deadline, "the writer never started writing"
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        os.close(fd)
        if child.poll() is None:
            child.kill()
            child.wait()

    after = LocalStorage(root)
    assert after.head("files/acme/big/debuginfo") is None
    assert list(after.list("")) == []
    assert list((root / ".tmp").iterdir()) == []


def test_local_temp_area_is_not_a_key(local_storage: LocalStorage) -> None:
    local_storage.put_bytes("a", b"1")
    (local_storage.root / ".tmp" / f"{os.getpid()}-inflight.part").write_bytes(b"half")

    assert list(local_storage.list("")) == ["a"]
    assert list(local_storage.list(".")) == []
    with pytest.raises(StorageError):
        local_storage.put_bytes(".tmp/x", b"1")
    with pytest.raises(StorageError):
        local_storage.get_bytes(".tmp/x")


def test_local_keeps_live_temp_files(tmp_path: Path) -> None:
    """Another live process's in-flight write must survive a new LocalStorage on the same root."""
    first = LocalStorage(tmp_path)
    live = tmp_path / ".tmp" / f"{os.getppid()}-inflight.part"
    live.write_bytes(b"half")
    LocalStorage(tmp_path)
    assert live.exists()
    first.put_bytes("k", b"v")
    assert first.get_bytes("k") == b"v"


# --- S3Storage only ------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections and never answers (a hung S3)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield sock.getsockname()[1]
    sock.close()


def _unreachable_store(port: int, **timeouts: float) -> S3Storage:
    return S3Storage(
        "bucket",
        endpoint_url=f"http://127.0.0.1:{port}",
        region="us-east-1",
        access_key="k",
        secret_key="s",
        **timeouts,  # type: ignore[arg-type]
    )


def _assert_unavailable_fast(store: S3Storage, tmp_path: Path, limit_s: float) -> None:
    src = write_file(tmp_path / "f", b"data")
    calls: dict[str, Callable[[], object]] = {
        "head": lambda: store.head("a/b"),
        "get_bytes": lambda: store.get_bytes("a/b"),
        "get_to_path": lambda: store.get_to_path("a/b", tmp_path / "out"),
        "put_bytes": lambda: store.put_bytes("a/b", b"data"),
        "put_file": lambda: store.put_file("a/b", src),
        "delete": lambda: store.delete("a/b"),
        "list": lambda: list(store.list("a/")),
        "check": store.check,
    }
    for name, call in calls.items():
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as caught:
            call()
        assert time.monotonic() - started < limit_s, name
        assert caught.value.__cause__ is not None
    assert not (tmp_path / "out").exists()


def test_s3_closed_port_is_unavailable_fast(tmp_path: Path) -> None:
    """With the default timeouts and retries, a refused connection fails within seconds."""
    store = _unreachable_store(free_ports(1)[0])
    started = time.monotonic()
    with pytest.raises(StorageUnavailable):
        store.head("a/b")
    assert time.monotonic() - started < 5
    _assert_unavailable_fast(_unreachable_store(free_ports(1)[0], max_attempts=1), tmp_path, 1)


def test_s3_hung_server_is_unavailable_fast(silent_server: int, tmp_path: Path) -> None:
    """A server that accepts and never answers trips the read timeout."""
    store = _unreachable_store(silent_server, read_timeout=0.3, max_attempts=1)
    _assert_unavailable_fast(store, tmp_path, 2)


@pytest.mark.s3
def test_s3_prefix_isolates_and_is_stripped(seaweed: SeaweedServer, s3_storage: S3Storage) -> None:
    tenant_a = seaweed.storage(s3_storage.bucket, prefix="tenant-a")
    tenant_b = seaweed.storage(s3_storage.bucket, prefix="tenant-b/")
    tenant_a.put_bytes("chunks/ab/1", b"a")
    tenant_b.put_bytes("chunks/ab/1", b"b")

    assert list(tenant_a.list("")) == ["chunks/ab/1"]
    assert tenant_a.get_bytes("chunks/ab/1") == b"a"
    assert tenant_b.get_bytes("chunks/ab/1") == b"b"
    assert sorted(s3_storage.list("")) == ["tenant-a/chunks/ab/1", "tenant-b/chunks/ab/1"]


@pytest.mark.s3
def test_s3_missing_bucket_is_an_error_not_a_missing_key(seaweed: SeaweedServer) -> None:
    store = seaweed.storage("no-such-bucket-here")

    with pytest.raises(StorageError, match="does not exist"):
        store.check()
    with pytest.raises(StorageError) as caught:
        store.put_bytes("a/b", b"1")
    assert not isinstance(caught.value, (ObjectNotFound, StorageUnavailable))


def test_compose_concatenates_atomically(storage: Storage, tmp_path: Path) -> None:
    big = [os.urandom(5 * 1024 * 1024 + 17), os.urandom(5 * 1024 * 1024 + 3), b"tail"]
    for i, part in enumerate(big):
        storage.put_bytes(f"parts/big/{i}", part)
    storage.compose("whole/big", [f"parts/big/{i}" for i in range(3)])
    assert storage.get_bytes("whole/big") == b"".join(big)
    small = [b"abc", b"", b"defgh"]
    for i, part in enumerate(small):
        storage.put_bytes(f"parts/small/{i}", part)
    storage.compose("whole/small", [f"parts/small/{i}" for i in range(3)])
    assert storage.get_bytes("whole/small") == b"abcdefgh"
    with pytest.raises(ObjectNotFound):
        storage.compose("whole/missing", ["parts/small/0", "parts/nope"])
    assert storage.head("whole/missing") is None
    assert [k for k in storage.list("whole/")] == ["whole/big", "whole/small"]
