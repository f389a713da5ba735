"""Run the real service as a subprocess (`python -m symbolicator serve`), as users do.

Tests talk to it over loopback only. `kill()` sends SIGKILL, for the tests that
check nothing half-done survives a crash.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{toml_value(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


LOOPBACK_FETCH: dict[str, Any] = {"allow_private_addresses": True, "read_timeout_s": 2.0, "total_timeout_s": 4.0}
"""Fetch settings for tests whose websites are loopback servers."""


def local_settings(root: Path, **extra: Any) -> dict[str, Any]:
    """A service on local storage and cache under `root` with one worker; each of `extra` replaces
    a top-level setting, or for a table is merged into it."""
    return merged({
        "storage": {"backend": "local", "local_dir": str(root / "uploads")},
        "cache": {"dir": str(root / "cache")},
        "workers": 1,
    }, extra)


def merged(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`base` with each of `extra` replacing a top-level setting, or for a table merged into it."""
    for key, value in extra.items():
        if isinstance(value, dict):
            base.setdefault(key, {}).update(value)
        else:
            base[key] = value
    return base


def write_toml(path: Path, settings: dict[str, Any]) -> Path:
    """Nested dicts become tables; everything else inline values."""
    lines: list[str] = []

    def emit(table: dict[str, Any], prefix: str) -> None:
        scalars = {k: v for k, v in table.items() if not isinstance(v, dict) or k in ("tokens", "scope_aliases")}
        if prefix and scalars:
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{toml_value(k) if not k.isidentifier() else k} = {toml_value(v)}")
        for k, v in table.items():
            if isinstance(v, dict) and k not in ("tokens", "scope_aliases"):
                emit(v, f"{prefix}.{k}" if prefix else k)

    emit(settings, "")
    path.write_text("\n".join(lines) + "\n")
    return path


SERVE = ("-m", "symbolicator", "serve")
REPO = Path(__file__).resolve().parents[2]


class PortTaken(Exception):
    """The free port picked for the service was taken before it could bind."""


class ServiceProcess:
    def __init__(self, workdir: Path, settings: dict[str, Any], env: dict[str, str] | None = None,
                 args: tuple[str, ...] = (), command: tuple[str, ...] = SERVE) -> None:
        self.workdir = workdir
        self.args = args
        self.command = command  # the interpreter's arguments before `--config FILE`
        self.port = free_port()
        self.settings = {"bind": f"127.0.0.1:{self.port}", **settings}
        self.env = env or {}
        self.config = write_toml(workdir / f"symbolicator-{self.port}.toml", self.settings)
        self.log_path = workdir / f"service-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "ServiceProcess":
        """Start and wait for `/healthcheck`; a port taken meanwhile by someone else is retried."""
        for attempt in range(3):
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = free_port()
                self.settings["bind"] = f"127.0.0.1:{self.port}"
                self.config = write_toml(self.workdir / f"symbolicator-{self.port}.toml", self.settings)
                self.log_path = self.workdir / f"service-{self.port}.log"
        return self._start(timeout)

    def _start(self, timeout: float) -> "ServiceProcess":
        env = {k: v for k, v in os.environ.items() if not k.startswith("SYMBOLICATOR_")}
        env.update(self.env)
        if self.command != SERVE:  # a module of tests/support: the child runs in `workdir`, away from the repo
            env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
        with open(self.log_path, "ab") as log:  # the child holds its own copy of the descriptor
            self.proc = subprocess.Popen(
                [sys.executable, *self.command, "--config", str(self.config), *self.args],
                cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                if "address already in use" in self.log().lower():
                    raise PortTaken(self.port)
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthcheck", timeout=1) as r:
                    if r.read() == b"ok":
                        return self
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"service did not answer within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "ServiceProcess":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def service_factory(tmp_path: Path):  # type: ignore[no-untyped-def]
    started: list[ServiceProcess] = []

    def make(settings: dict[str, Any] | None = None, env: dict[str, str] | None = None,
             start: bool = True, command: tuple[str, ...] = SERVE) -> ServiceProcess:
        svc = ServiceProcess(tmp_path, settings or {}, env, command=command)
        started.append(svc)
        return svc.start() if start else svc

    yield make
    for svc in started:
        svc.stop()


def child_pids(pid: int) -> list[int]:
    """Direct children of `pid` (the service's worker processes), from /proc."""
    out = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid):
            out.append(int(status.parent.name))
    return sorted(out)
