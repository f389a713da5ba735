"""A target that breaks the contract on purpose, so the harness's own tests can prove it notices.

`b"crash"` anywhere in the input raises IndexError (an unhandled exception), `b"typed"` raises
`MalformedObject` (allowed), `b"hang"` loops forever (the strategy and seeds never hold it:
tests hand it to `check` with a short limit), anything else returns. Not registered in
`fuzz.targets.TARGETS`, so `python -m fuzz` never runs it; the smoke test builds a `Target` for
it with a seed folder of its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from symbolicator.errors import MalformedObject

if TYPE_CHECKING:
    from hypothesis import strategies as st


def run(data: bytes) -> None:
    if b"crash" in data:
        raise IndexError("the canary crashed")
    if b"hang" in data:
        while True:
            pass
    if b"typed" in data:
        raise MalformedObject("the canary's typed error")


def inputs() -> st.SearchStrategy[bytes]:
    from hypothesis import strategies as st

    return st.one_of(st.binary(max_size=8), st.sampled_from([b"typed", b"crash"]))


def seeds() -> dict[str, bytes]:
    return {"typed": b"typed", "crash": b"crash"}
