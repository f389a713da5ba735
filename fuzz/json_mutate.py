"""A JSON-aware libFuzzer mutator: change one node of a document, keep the rest valid.

libFuzzer's byte mutations break JSON on nearly every step, so a request body or a
source map would rarely get past the parser. When the input parses, this mutator picks
one node and replaces it (an edge-case number, a damaged or edge-case string, another
type, a dropped or duplicated element), then re-serialises; otherwise, and one time in
four anyway, it falls back to libFuzzer's own `atheris.Mutate`, so the parser is still
fuzzed. `atheris.Mutate` only works inside the atheris child.
"""

from __future__ import annotations

import json
import random
from typing import Any

from fuzz.edges import EDGE_INTS, EDGE_TEXT


def byte_mutate(data: bytes, max_size: int) -> bytes:
    from fuzz.atheris_child import byte_mutate as mutate_bytes

    return mutate_bytes(data, max_size)

_Slot = tuple[Any, Any]


def slots(doc: Any) -> list[_Slot]:
    """Every (container, key) of a JSON document, depth first: the nodes a mutation can replace."""
    out: list[_Slot] = []
    stack = [doc]
    while stack:
        node = stack.pop()
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in items:
            out.append((node, key))
            stack.append(child)
    return out


def _other_value(rng: random.Random) -> Any:
    return rng.choice([None, True, False, 0, -1, 1.5, "", [], {}, rng.choice(EDGE_INTS), rng.choice(EDGE_TEXT),
                       [rng.choice(EDGE_INTS)], {"": None}])


def _new_value(old: Any, rng: random.Random) -> Any:
    roll = rng.random()
    if roll < 0.2:
        return _other_value(rng)
    if isinstance(old, bool) or old is None:
        return _other_value(rng)
    if isinstance(old, int):
        flipped = old ^ (1 << rng.randint(0, 70))
        return rng.choice([rng.choice(EDGE_INTS), old + rng.randint(-3, 3), old * 2, -old, flipped])
    if isinstance(old, str):
        if roll < 0.4:
            return rng.choice(EDGE_TEXT)
        raw = old.encode("utf-8", "surrogatepass")
        return byte_mutate(raw, len(raw) + 16).decode("utf-8", "replace")
    if isinstance(old, list):
        if old and roll < 0.5:
            shorter = list(old)
            del shorter[rng.randrange(len(shorter))]
            return shorter
        return old + [rng.choice(old) if old else _other_value(rng)] * rng.randint(1, 3)
    if isinstance(old, dict):
        changed = dict(old)
        if changed and roll < 0.6:
            del changed[rng.choice(list(changed))]
        else:
            changed[rng.choice(EDGE_TEXT)] = _other_value(rng)
        return changed
    return _other_value(rng)


def mutate_document(doc: Any, rng: random.Random) -> Any:
    """`doc` with one node replaced (the whole document when it has no inner node)."""
    found = slots(doc)
    if not found:
        return _new_value(doc, rng)
    container, key = rng.choice(found)
    container[key] = _new_value(container[key], rng)
    return doc


def mutate(data: bytes, max_size: int, seed: int) -> bytes:
    """The `custom_mutator` for JSON inputs."""
    rng = random.Random(seed)
    if rng.random() < 0.25:
        return byte_mutate(data, max_size)
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return byte_mutate(data, max_size)
    out = json.dumps(mutate_document(doc, rng), ensure_ascii=rng.random() < 0.5).encode("utf-8", "surrogatepass")
    return out if len(out) <= max_size else byte_mutate(data, max_size)
