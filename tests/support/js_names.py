"""Scoring a sourcemap cache's function names against recorded expectations (TypeScript compiler API names)."""

from __future__ import annotations

from typing import Any

from symbolicator.sourcemaps.smcache import SmCache


def cache_score(cache: SmCache, rows: list[list[Any]]) -> tuple[float, list[tuple[Any, Any]]]:
    """The share of rows (0-based line, column, expected function, …) the cache names right, and
    the misses as (expected, answered)."""
    misses = []
    for line, col, want, *_ in rows:
        token = cache.lookup(line + 1, col + 1)
        got = token.function if token else None
        if got != want:
            misses.append((want, got))
    return 1 - len(misses) / len(rows), misses
