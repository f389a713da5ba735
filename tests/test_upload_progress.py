"""`symbolicator upload`'s progress bar, as a user sees it on a terminal, ends at 100 % (issue 17.4).

Its total counted missing chunks × chunk size, so a file whose last chunk is short
ended below 100 % (91 % in the report; 83 % for this fixture's five 64 KiB chunks).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
from pathlib import Path
from typing import Any

from tests.support.service import ServiceProcess

REPO = Path(__file__).resolve().parent.parent
ELF = REPO / "tests/fixtures/native/out/elf/rust_v0"  # 272,080 bytes: four 64 KiB chunks and 9,936 bytes
TOKEN = "progress-token"


def run_on_a_terminal(cmd: list[str]) -> tuple[int, str]:
    """Run `cmd` with stderr on a pseudo-terminal (tqdm draws only on a terminal); its exit code and stderr."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))  # a pty starts 0 columns wide
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=slave, env={**os.environ, "COLUMNS": "120"})
    os.close(slave)
    out = b""
    while True:
        ready, _, _ = select.select([master], [], [], 60)
        if not ready:
            break
        try:
            block = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not block:
            break
        out += block
    os.close(master)
    return proc.wait(60), out.decode(errors="replace")


def test_progress_bar_ends_at_100_percent(service_factory: Any, tmp_path: Path) -> None:
    svc: ServiceProcess = service_factory({
        "storage": {"backend": "local", "local_dir": str(tmp_path / "uploads")},
        "cache": {"dir": str(tmp_path / "cache")},
        "auth": {"tokens": {TOKEN: {"scopes": ["acme/web"], "rights": ["upload"]}}},
        "limits": {"chunk_size": 65536},
    })
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(ELF, build / "app")
    assert ELF.stat().st_size % 65536 and ELF.stat().st_size > 4 * 65536
    code, err = run_on_a_terminal([sys.executable, "-m", "symbolicator", "upload", "--url", svc.url, "--token",
                                   TOKEN, "--scope", "acme/web", "--wait", str(build)])
    assert code == 0, err
    shown = re.findall(r"uploading:\s+(\d+)%", err)
    assert shown, err
    assert shown[-1] == "100", err
    sizes = re.findall(r"\|\s*([\d.]+k?)/([\d.]+k?)", err)
    assert sizes[-1][0] == sizes[-1][1] == "272k", sizes
