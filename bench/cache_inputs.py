"""Many distinct real source maps for the cache-at-scale bench, generated into `bench/work/cache_maps/n<count>/`.

Variant `i` is an entry file `module.exports = [require(BASE), "variant i"]`,
BASE cycling through five real npm packages of `node_modules`, bundled by
esbuild (`--bundle --minify --sourcemap`) in one run over all entries. Each
bundle is a real bundler's output, every map differs from every other (so each
is its own derived-cache entry), and each converts to a sourcemap cache of
0.75–1.35 MiB: a few hundred of them overflow a 64 MiB cap several times.

Variants are spread over group folders (`g00/`, `g01/` …) so that
`symbolicator upload` makes one artifact bundle per folder. Each variant comes
with one position and what its map says is there (the raw mapping at that
position, read from the map, not looked up through a cache).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.inputs import NODE_MODULES, WORK, _stamp_ok

BASES = ("acorn", "ajv", "enhanced-resolve", "schema-utils", "browserslist")
GENERATOR_VERSION = 1
OUT = WORK / "cache_maps"


@dataclass(frozen=True)
class MapSet:
    """`groups[g]` holds the variant names in folder `out/g{g:02d}`; `positions[name]` a frame and its answer."""

    out: Path
    groups: list[list[str]]
    positions: dict[str, dict[str, Any]]

    def folder(self, group: int) -> Path:
        return self.out / f"g{group:02d}"


def map_set(sizes: list[int]) -> MapSet:
    """Variants `v0000…` in groups of the given sizes; built once per set of sizes."""
    names = [f"v{i:04d}" for i in range(sum(sizes))]
    groups, start = [], 0
    for size in sizes:
        groups.append(names[start:start + size])
        start += size
    root = OUT / f"n{len(names)}"
    src, out = root / "src", root / "out"
    stamp = root / "stamp.json"
    params = {"v": GENERATOR_VERSION, "sizes": sizes, "bases": list(BASES)}
    if not _stamp_ok(stamp, params) or not (root / "positions.json").exists():
        for d in (src, out):
            shutil.rmtree(d, ignore_errors=True)
        entries = []
        for g, members in enumerate(groups):
            (src / f"g{g:02d}").mkdir(parents=True)
            for name in members:
                base = BASES[int(name[1:]) % len(BASES)]
                entry = src / f"g{g:02d}" / f"{name}.js"
                entry.write_text(f'module.exports = [require("{base}"), "variant {name}"];\n')
                entries.append(str(entry))
        subprocess.run([str(NODE_MODULES / ".bin" / "esbuild"), *entries, "--bundle", "--platform=node",
                        "--external:fsevents", "--minify", "--sourcemap", f"--outdir={out}", f"--outbase={src}",
                        "--log-level=warning"], check=True)
        positions = {name: _position((out / f"g{g:02d}" / f"{name}.js.map").read_bytes())
                     for g, members in enumerate(groups) for name in members}
        (root / "positions.json").write_text(json.dumps(positions))
        stamp.write_text(json.dumps(params))
    return MapSet(out, groups, json.loads((root / "positions.json").read_text()))


def _position(map_bytes: bytes) -> dict[str, Any]:
    """The middle mapping that has a source: its generated position and original one (1-based)."""
    import numpy as np

    from symbolicator.sourcemaps import parse
    from symbolicator.sourcemaps.vlq import NONE

    smap = parse(map_bytes)
    seg = smap.segments
    mapped = np.flatnonzero(np.asarray(seg.src) != NONE)
    i = int(mapped[len(mapped) // 2])
    return {"line": int(seg.gen_line[i]) + 1, "column": int(seg.gen_col[i]) + 1,
            "expected": {"filename": smap.raw_sources[int(seg.src[i])], "lineno": int(seg.src_line[i]) + 1,
                         "colno": int(seg.src_col[i]) + 1}}
