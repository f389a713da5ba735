"""Which addresses of a module a stack scanner takes for code, as Breakpad's resolver answers.

rust-minidump (what minidump-stackwalk and Symbolicator walk with) accepts a scanned word as a
return address when the module's symbols name the address before it: a `FUNC` record covering
it, or else the nearest `PUBLIC` at or below it unless a `FUNC` starts between the two (a
public has no size; one before a function says nothing about what follows that function).
`intervals` evaluates that rule once for a whole module into sorted, disjoint `[start, end)`
intervals, flattened (`[s0, e0, s1, e1, …]`), which the CFI cache stores beside its rows
(`cache.py`); the last public's interval is open-ended (`MAX_ADDRESS`), as in Breakpad.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

MAX_ADDRESS = (1 << 64) - 1


def intervals(funcs: Sequence[tuple[int, int]], publics: Sequence[int]) -> list[int]:
    """`funcs` sorted (start, end) ranges, `publics` sorted addresses → flattened code intervals."""
    starts = [s for s, _ in funcs]
    # Where a FUNC covers the address, the rule answers for that FUNC alone; elsewhere for the
    # nearest public above the nearest FUNC start. Evaluate it on each piece between breakpoints.
    points = sorted({p for s, e in funcs for p in (s, e)} | set(publics))
    out: list[int] = []

    def valid(addr: int) -> bool:
        i = bisect.bisect_right(starts, addr) - 1
        if i >= 0 and addr < funcs[i][1]:
            return True
        j = bisect.bisect_right(publics, addr) - 1
        return j >= 0 and (i < 0 or publics[j] > starts[i])

    for k, point in enumerate(points):
        end = points[k + 1] if k + 1 < len(points) else MAX_ADDRESS
        if not valid(point):
            continue
        if out and out[-1] == point:
            out[-1] = end
        else:
            out += [point, end]
    return out


def covers(flat: Sequence[int], addr: int) -> bool:
    """Whether `addr` is inside one of the flattened intervals."""
    return bisect.bisect_right(flat, addr) % 2 == 1
