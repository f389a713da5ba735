"""What one engine run on one target produced, and where its crash inputs go."""

from __future__ import annotations

import hashlib
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

CRASHES = Path(__file__).resolve().parent / "crashes"


@dataclass
class Outcome:
    """`inputs` counts executed inputs (hypothesis: including shrinking; atheris: libFuzzer's runs).

    `crashes` are paths of saved inputs that broke the contract, replayable with
    `python -m fuzz --reproduce PATH --target NAME`; `detail` is the first one's report.
    """

    target: str
    engine: str
    inputs: int = 0
    seconds: float = 0.0
    crashes: list[Path] = field(default_factory=list)
    detail: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return not self.crashes and not self.error


def save_crash(folder: Path, engine: str, data: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{engine}-{hashlib.sha1(data).hexdigest()[:16]}"
    path.write_bytes(data)
    return path


class Progress:
    """Throttled progress lines on stderr: `[fuzz hypothesis vlq] 2500/10000 inputs, 12 s`."""

    def __init__(self, engine: str, target: str, every: float = 10.0) -> None:
        self.prefix = f"[fuzz {engine} {target}]"
        self.every = every
        self.started = self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def say(self, message: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            print(f"{self.prefix} {message} ({now - self.started:.0f} s)", file=sys.stderr, flush=True)
