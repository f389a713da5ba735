"""A real minified bundle just under the scraping cap (64 MiB), for the memory bound of JS conversion.

Why a real one: the cost of the function-name pass depends on how many syntax nodes a byte of
source makes, and only real minifier output has the density of real attacks on a scraping
service. So esbuild bundles distinct *copies* of real libraries from node_modules (TypeScript's
compiler, rollup, terser, acorn: each copy a module of its own, so nothing is deduplicated) with
`--minify --sourcemap`, filling up to `target` bytes. Built once into `bench/work/bigjs/` (never
committed); `python -m bench.big_bundle` prints the paths and sizes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NODE_MODULES = REPO / "node_modules"
WORK = REPO / "bench" / "work" / "bigjs"
MiB = 1024 * 1024
# Real libraries, largest first: the TypeScript compiler is ~3.6 MB minified, the others fill the rest.
LIBRARIES = ("typescript/lib/typescript.js", "rollup/dist/shared/rollup.js", "terser/dist/bundle.min.js",
             "acorn/dist/acorn.js")
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class BigBundle:
    minified: Path
    sourcemap: Path


def _esbuild(entry: Path, out: Path, sourcemap: bool) -> None:
    args = [str(NODE_MODULES / ".bin" / "esbuild"), str(entry), "--bundle", "--platform=node",
            "--external:fsevents", "--minify", f"--outfile={out}", "--log-level=error"]
    if sourcemap:
        args += ["--sourcemap", "--sources-content=false"]
    subprocess.run(args, check=True)


def _one_size(lib: str) -> int:
    out = WORK / "sizes" / (Path(lib).stem + ".min.js")
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        _esbuild(NODE_MODULES / lib, out, sourcemap=False)
    return out.stat().st_size


def _plan(target: int) -> list[str]:
    """Copies of each library, largest first, while the sum stays under `target` (5% headroom for glue)."""
    budget = int(target * 0.97)
    plan: list[str] = []
    for lib in LIBRARIES:
        size = _one_size(lib)
        while budget >= size:
            plan.append(lib)
            budget -= size
    return plan


def build(target: int = 64 * MiB) -> BigBundle:
    """The bundle and its map (no `sourcesContent`), built once per target and generator version."""
    WORK.mkdir(parents=True, exist_ok=True)
    minified, smap, stamp = WORK / "big.min.js", WORK / "big.min.js.map", WORK / "stamp.json"
    params = {"v": GENERATOR_VERSION, "target": target}
    if stamp.exists() and json.loads(stamp.read_text()) == params and minified.exists() and smap.exists():
        return BigBundle(minified, smap)
    src = WORK / "src"
    shutil.rmtree(src, ignore_errors=True)
    src.mkdir()
    lines = []
    for i, lib in enumerate(_plan(target)):
        copy = src / f"lib{i}_{Path(lib).name}"
        shutil.copyfile(NODE_MODULES / lib, copy)
        lines.append(f"exports.m{i} = require('./{copy.name}');")
    entry = src / "entry.js"
    entry.write_text("\n".join(lines) + "\n")
    _esbuild(entry, minified, sourcemap=True)
    if minified.stat().st_size > target:
        raise RuntimeError(f"{minified} is {minified.stat().st_size} bytes, over the target {target}")
    shutil.rmtree(src)
    stamp.write_text(json.dumps(params))
    return BigBundle(minified, smap)


if __name__ == "__main__":
    built = build()
    for path in (built.minified, built.sourcemap):
        print(f"{path}  {path.stat().st_size / MiB:.1f} MiB")
