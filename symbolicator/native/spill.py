"""Sorted runs in bounded memory: the symcache build's rows, spilled to disk when its budget is full.

A debug file of several GB holds tens of millions of line rows and inline steps. Here they are
numpy records of ~20 bytes, appended per compile unit to a `RunStore`. When the stores of one
build pass their share of `limits.conversion_memory_bytes`, each store sorts its buffer (stable,
by address then priority) and writes it as one *run* to a file in the spill folder. At the end,
`merge_windows` reads every run back in blocks and yields the rows of all stores in windows of
increasing address, so the merge holds one block per run, never the whole table.

Spill files have no name: `tempfile.TemporaryFile` opens them with `O_TMPFILE` (or unlinks them
at once), so nothing can be left behind. The kernel frees their blocks when the last descriptor
closes, whether the build returns, raises, or its worker is SIGKILLed or stops with the service.
`open_spill_file` is the only way this package makes one.

The order of equal keys is the input order, within a run and across runs (runs are cut in input
order and read back in it), so the merged stream does not depend on where the runs were cut: a
build that spills writes the same bytes as one that does not.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np

from symbolicator.errors import MalformedObject

DEFAULT_MEMORY_BYTES = 1 << 30  # the default of `limits.conversion_memory_bytes`
MIN_BLOCK_RECORDS = 16
MAX_BLOCK_RECORDS = 1 << 16
BUFFER_SHARE = 4  # run buffers may take 1/BUFFER_SHARE of the budget; sorting one needs about as much again


def raw_bytes(arr: Any) -> memoryview:
    """The bytes of a numpy array, without a copy when it is contiguous."""
    flat: memoryview = np.ascontiguousarray(arr).reshape(-1).view(np.uint8).data
    return flat


def open_spill_file(spill_dir: str | Path | None) -> IO[bytes]:
    """An unnamed read-write file in `spill_dir` (the system's temp folder when None)."""
    try:
        if spill_dir is not None:
            os.makedirs(spill_dir, exist_ok=True)
        return tempfile.TemporaryFile(dir=spill_dir)
    except OSError as exc:
        raise MalformedObject(f"cannot open a spill file in {spill_dir}: {exc}") from exc


@dataclass(slots=True)
class Run:
    """One sorted run: `count` records of `dtype`, in memory (`array`) or in an unnamed `file`."""

    dtype: Any
    count: int
    array: Any = None
    file: IO[bytes] | None = None

    def read(self, start: int, n: int) -> Any:
        n = max(0, min(n, self.count - start))
        if self.array is not None:
            return self.array[start:start + n]
        assert self.file is not None
        self.file.seek(start * self.dtype.itemsize)
        raw = self.file.read(n * self.dtype.itemsize)
        if len(raw) != n * self.dtype.itemsize:
            raise MalformedObject("a spill file came back short (was the disk full?)")
        return np.frombuffer(raw, dtype=self.dtype)


@dataclass
class Budget:
    """Bytes the run buffers of one build may hold before they are spilled."""

    memory_bytes: int
    spill_dir: str | Path | None = None
    stores: list["RunStore | ChunkStore"] = field(default_factory=list)
    spilled_runs: int = 0

    @property
    def buffer_bytes(self) -> int:
        return max(self.memory_bytes // BUFFER_SHARE, 1)

    def check(self) -> None:
        """Spill every store's buffer once their sum passes the buffer share of the budget."""
        if sum(s.buffered_bytes for s in self.stores) > self.buffer_bytes:
            for s in self.stores:
                s.spill()


class RunStore:
    """Records of one kind (`dtype` with an `a` address and a `p` priority field), in sorted runs."""

    def __init__(self, dtype: Any, budget: Budget) -> None:
        self.dtype = np.dtype(dtype)
        self.budget = budget
        self._chunks: list[Any] = []
        self.buffered_bytes = 0
        self.runs: list[Run] = []
        budget.stores.append(self)

    def append(self, records: Any) -> None:
        if len(records):
            self._chunks.append(records)
            self.buffered_bytes += records.nbytes

    def _sorted_buffer(self) -> Any:
        buf = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks = []
        self.buffered_bytes = 0
        return buf[np.lexsort((buf["p"], buf["a"]))]

    def spill(self) -> None:
        if not self._chunks:
            return
        buf = self._sorted_buffer()
        f = open_spill_file(self.budget.spill_dir)
        try:
            f.write(raw_bytes(buf))
        except OSError as exc:
            f.close()
            raise MalformedObject(f"cannot write a spill file: {exc}") from exc
        self.runs.append(Run(self.dtype, len(buf), file=f))
        self.budget.spilled_runs += 1

    def finish(self) -> list[Run]:
        """Every run, the unspilled buffer last (kept in memory)."""
        if self._chunks:
            buf = self._sorted_buffer()
            self.runs.append(Run(self.dtype, len(buf), array=buf))
        return self.runs

    def close(self) -> None:
        for run in self.runs:
            if run.file is not None:
                run.file.close()
        self.runs = []
        self._chunks = []


class ChunkStore:
    """Append-only records kept in input order (the node table): chunks in memory, spilled past the budget."""

    def __init__(self, dtype: Any, budget: Budget) -> None:
        self.dtype = np.dtype(dtype)
        self.budget = budget
        self._chunks: list[Any] = []
        self.buffered_bytes = 0
        self._file: IO[bytes] | None = None
        self._spilled: list[int] = []  # record counts of the chunks in the file, in order
        self.count = 0
        budget.stores.append(self)

    def append(self, records: Any) -> None:
        if len(records):
            self._chunks.append(records)
            self.buffered_bytes += records.nbytes
            self.count += len(records)

    def spill(self) -> None:
        if not self._chunks:
            return
        if self._file is None:
            self._file = open_spill_file(self.budget.spill_dir)
        self._file.seek(0, os.SEEK_END)
        try:
            for chunk in self._chunks:
                self._file.write(raw_bytes(chunk))
                self._spilled.append(len(chunk))
        except OSError as exc:
            raise MalformedObject(f"cannot write a spill file: {exc}") from exc
        self._chunks = []
        self.buffered_bytes = 0
        self.budget.spilled_runs += 1

    def chunks(self) -> Iterator[Any]:
        """Every chunk in input order: the spilled ones read back one at a time, then the rest."""
        if self._file is not None:
            start = 0
            for n in self._spilled:
                yield Run(self.dtype, start + n, file=self._file).read(start, n)
                start += n
        yield from self._chunks

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._chunks = []


def _block_records(budget: Budget, runs: list[Run]) -> int:
    """Records read from each run at a time: the runs' blocks share a slice of the budget, and a
    window stays small enough for its temporaries (a dozen 8-byte columns) to be cheap."""
    per_run = budget.buffer_bytes // max(1, len(runs)) // 4
    return int(max(MIN_BLOCK_RECORDS, min(MAX_BLOCK_RECORDS, per_run // max(1, max(r.dtype.itemsize for r in runs)))))


def merge_windows(stores: list[RunStore], budget: Budget) -> Iterator[tuple[int, int | None, list[Any]]]:
    """(low, high, [window per store]): every record with low <= address < high, sorted by (a, p).

    `high` is None for the last window. Within equal (a, p) records keep their input order,
    so "the last record at an address wins" means the same here as in one big sort. Call
    `finish()` on the stores first.
    """
    runs = [r for s in stores for r in s.runs if r.count]
    owner = [si for si, s in enumerate(stores) for r in s.runs if r.count]
    block = _block_records(budget, runs) if runs else MIN_BLOCK_RECORDS
    bufs = [r.read(0, block) for r in runs]
    pos = [len(b) for b in bufs]
    low = 0
    while True:
        open_runs = [i for i, r in enumerate(runs) if pos[i] < r.count]
        high: int | None = min(int(bufs[i]["a"][-1]) for i in open_runs) if open_runs else None
        parts: list[list[Any]] = [[] for _ in stores]
        for i, b in enumerate(bufs):
            cut = len(b) if high is None else int(np.searchsorted(b["a"], high, side="left"))
            if cut:
                parts[owner[i]].append(b[:cut])
            rest = b[cut:]
            if high is not None and pos[i] < runs[i].count and (not len(rest) or int(rest["a"][-1]) <= high):
                more = runs[i].read(pos[i], block)
                pos[i] += len(more)
                rest = np.concatenate((rest, more)) if len(rest) else more
            bufs[i] = rest
        windows = []
        for si, s in enumerate(stores):
            ps = parts[si]
            if not ps:
                windows.append(np.zeros(0, dtype=s.dtype))
            elif len(ps) == 1:
                windows.append(ps[0])
            else:
                w = np.concatenate(ps)
                windows.append(w[np.lexsort((w["p"], w["a"]))])
        yield low, high, windows
        if high is None:
            return
        low = high
