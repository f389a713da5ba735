"""Fault injectors, shared by `tests/test_faults.py` (short, in CI) and the chaos scenarios (long).

Every fault is real: a SeaweedFS process really stops and comes back on the
same ports with the same data; a full disk is a real tmpfs that answers ENOSPC;
a corrupt cache file has its bytes really changed on disk; a crash is a SIGKILL.

- `RestartableSeaweed` stops `weed` and starts it again on the same ports and
  data folder. weed's master resumes its Raft state on restart and waits for its
  election timeout (10 s by default, ~20 s before S3 answers); restarts here pass
  `-master.electionTimeout=1s`, which brings that down to a few seconds.
- `PrivateTmpfs` mounts a small tmpfs over the cache folder in a private mount
  namespace (`unshare --mount`, or `--user --map-root-user --mount` without
  root), held by a `sleep` process; `PrefixedService` starts the service inside it
  with `nsenter`, so a restarted service finds the same full disk. Nothing outside
  sees the mount and it vanishes with the holder, so a crash leaves nothing
  mounted. Files are written into it through `/proc/<holder>/root`. This is a real
  ENOSPC on every write (files and SQLite alike), which neither a read-only folder
  (EACCES/EROFS) nor RLIMIT_FSIZE (EFBIG, per file, SIGXFSZ) would give.

Both subclass the test helpers and swap what they launch only for the duration
of one launch (the helpers have no hook for a command prefix or fixed ports).
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Self
from unittest import mock

import tests.support.seaweed as seaweed_support
import tests.support.service as service_support
from tests.support.seaweed import SeaweedServer, find_weed
from tests.support.service import ServiceProcess, child_pids

FAST_ELECTION = "-master.electionTimeout=1s"


@contextmanager
def _launching(module: Any, extra_args: list[str] | None = None, prefix: list[str] | None = None) -> Iterator[None]:
    """Within the block, `module.subprocess.Popen` runs `prefix + args + extra_args`."""
    real = subprocess.Popen

    def popen(args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return real([*(prefix or []), *args, *(extra_args or [])], **kwargs)

    with mock.patch.object(module.subprocess, "Popen", popen):
        yield


class RestartableSeaweed(SeaweedServer):
    """A `SeaweedServer` that can be stopped (an outage) and started again as the same server."""

    def __init__(self, data_dir: Path, **kwargs: Any) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        super().__init__(data_dir=data_dir, **kwargs)

    def start(self) -> Self:
        with _launching(seaweed_support, extra_args=[FAST_ELECTION]):
            super().start()
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def outage(self) -> None:
        """Stop weed (SIGTERM, SIGKILL after the grace); ports and data stay for `resume`."""
        self._terminate()

    def resume(self) -> float:
        """Start weed again on the same ports and data; seconds until S3 took a write."""
        started = time.monotonic()
        ports = [self.ports[name] for name in seaweed_support._PORT_NAMES]
        with mock.patch.object(seaweed_support, "free_ports", lambda count: list(ports)), \
                _launching(seaweed_support, extra_args=[FAST_ELECTION]):
            self._launch(find_weed())
            self._wait_ready()
        return time.monotonic() - started


class PrivateTmpfs:
    """A `size`-byte tmpfs at `directory`, seen only by processes started with `prefix` (module docstring).

    A holder process (`sleep`) owns a private mount namespace with the tmpfs in it;
    a service launched with `prefix` (`nsenter` into that namespace) sees the tmpfs,
    and so does the next one after a restart, with the same content. Stopping the
    holder (or its dying) takes the mount away with the namespace.
    """

    def __init__(self, directory: Path, size: int) -> None:
        self.directory = directory.resolve()
        self.size = size
        self.holder: subprocess.Popen[bytes] | None = None
        self.prefix: list[str] = []

    @staticmethod
    def namespaces() -> list[tuple[list[str], list[str]]]:
        """(unshare args, nsenter args) that may work here: plain as root, in a user namespace otherwise."""
        plain = (["unshare", "--mount", "--propagation", "private"], ["--mount"])
        user = (["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"],
                ["--user", "--mount", "--preserve-credentials"])
        return [plain, user] if os.geteuid() == 0 else [user]

    def __enter__(self) -> Self:
        self.directory.mkdir(parents=True, exist_ok=True)
        if shutil.which("unshare") is None or shutil.which("nsenter") is None:
            raise OSError("unshare/nsenter (util-linux) are not installed")
        script = f'mount -t tmpfs -o size={self.size} tmpfs "$0" && echo ready && exec sleep infinity'
        errors = []
        for unshare, nsenter in self.namespaces():
            holder = subprocess.Popen([*unshare, "sh", "-c", script, str(self.directory)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True)
            assert holder.stdout is not None
            if holder.stdout.readline().strip() == b"ready":
                self.holder = holder
                self.prefix = ["nsenter", "--target", str(holder.pid), *nsenter, "--"]
                return self
            _, err = holder.communicate()  # waits, and closes both pipes
            errors.append(err.decode(errors="replace").strip())
        raise OSError(f"cannot mount a private tmpfs here: {'; '.join(errors)}")

    def __exit__(self, *exc: object) -> None:
        if self.holder is not None:
            self.holder.kill()
            self.holder.communicate()  # waits, and closes both pipes
            self.holder = None

    def inside(self, path: Path) -> Path:
        """`path` as the namespace sees it (through the holder's `/proc/<pid>/root`)."""
        assert self.holder is not None
        return Path(f"/proc/{self.holder.pid}/root") / path.resolve().relative_to("/")

    def fill(self) -> int:
        """Fill the tmpfs to the last byte; bytes written."""
        written = 0
        ballast = self.inside(self.directory / "ballast")
        for block in (b"\0" * 65536, b"\0" * 512):
            with open(ballast, "ab", buffering=0) as f:
                try:
                    while True:
                        written += f.write(block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
        return written

    def free(self) -> None:
        self.inside(self.directory / "ballast").unlink()


class PrefixedService(ServiceProcess):
    """The service launched with `prefix` before its command (`PrivateTmpfs.prefix`)."""

    def __init__(self, workdir: Path, settings: dict[str, Any], prefix: list[str],
                 env: dict[str, str] | None = None) -> None:
        super().__init__(workdir, settings, env)
        self.prefix = prefix

    def _start(self, timeout: float) -> Self:
        with _launching(service_support, prefix=self.prefix):
            super()._start(timeout)
        return self


def corrupt(path: Path, how: str) -> None:
    """Damage a file in place: `flip` inverts 64 bytes in the middle (size kept), `truncate` halves it."""
    size = path.stat().st_size
    with open(path, "r+b") as f:
        if how == "truncate":
            f.truncate(size // 2)
            return
        if how != "flip":
            raise ValueError(how)
        f.seek(size // 2)
        data = f.read(64)
        f.seek(size // 2)
        f.write(bytes(b ^ 0xFF for b in data))


children = child_pids


def workers(pid: int) -> list[int]:
    """The service's conversion workers: its children started by multiprocessing's `spawn`
    (not the resource tracker `spawn` also starts)."""
    out = []
    for child in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                out.append(child)
        except OSError:
            continue
    return out


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of one process in KiB; (0, 0) once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0, 0
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    return (int(fields.get("VmRSS", "0 kB").split()[0]), int(fields.get("VmHWM", "0 kB").split()[0]))


def kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def alive(pid: int) -> bool:
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def wait_for(predicate: Callable[[], Any], timeout: float, interval: float = 0.005) -> Any:
    """Poll until `predicate()` is truthy; its value, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
