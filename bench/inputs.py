"""Benchmark inputs, generated on demand into bench/work/ (git-ignored) and reused by later runs.

Nothing here is committed: the JS input is a real npm package bundled by esbuild,
the native input a C++ program this module writes and clang compiles. Each input
carries a stamp of the parameters that made it, so a rerun with the same
parameters skips the build (the native one takes minutes at full size), and a
changed generator rebuilds.

- JS: `typescript` (full, a ~14.5 MB map) or `rollup` (quick, ~1.8 MB), bundled
  with `esbuild --bundle --minify --sourcemap`; plus N mapped positions sampled
  with a fixed seed, shared by every engine that resolves them.
- Native: a template-heavy C++ program (std containers over generated structs,
  lambdas, `always_inline` chains), `clang++ -O1 -g`, compiled with two jobs;
  plus N return addresses sampled inside its functions with a fixed seed.
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WORK = REPO / "bench" / "work"
NODE_MODULES = REPO / "node_modules"
GENERATOR_VERSION = 1


@dataclass(frozen=True)
class JsInput:
    """A minified bundle, its map, and `positions` (JSON list of 1-based [line, UTF-16 column])."""

    package: str
    minified: Path
    sourcemap: Path
    positions: Path


@dataclass(frozen=True)
class NativeInput:
    """An ELF with DWARF; `addresses` holds return addresses (file virtual addresses, JSON ints)."""

    binary: Path
    dwarf_bytes: int
    addresses: Path
    arch: str


def _stamp_ok(stamp: Path, params: dict[str, object]) -> bool:
    if not stamp.exists():
        return False
    built = json.loads(stamp.read_text())
    return all(built.get(k) == v for k, v in params.items())


def js_input(quick: bool, n_positions: int) -> JsInput:
    """Bundle the package once; re-sample positions only when their count changes."""
    package, entry = (("rollup", "rollup/dist/shared/rollup.js") if quick
                      else ("typescript", "typescript/lib/typescript.js"))
    out = WORK / "js"
    out.mkdir(parents=True, exist_ok=True)
    minified = out / f"{package}.min.js"
    smap = out / f"{package}.min.js.map"
    params = {"v": GENERATOR_VERSION, "entry": entry, "n": n_positions}
    stamp = out / f"{package}.stamp.json"
    if not _stamp_ok(stamp, params) or not smap.exists():
        subprocess.run([str(NODE_MODULES / ".bin" / "esbuild"), str(NODE_MODULES / entry), "--bundle",
                        "--platform=node", "--external:fsevents", "--minify", "--sourcemap",
                        f"--outfile={minified}", "--log-level=warning"], check=True)
        positions = out / f"{package}.positions.json"
        positions.write_text(json.dumps(_sample_positions(smap.read_bytes(), n_positions)))
        stamp.write_text(json.dumps(params))
    return JsInput(package, minified, smap, out / f"{package}.positions.json")


def _sample_positions(map_bytes: bytes, n: int) -> list[list[int]]:
    """Starts of random mappings that have a source: every engine must answer these."""
    import numpy as np

    from symbolicator.sourcemaps import parse
    from symbolicator.sourcemaps.vlq import NONE

    seg = parse(map_bytes).segments
    mapped = np.flatnonzero(np.asarray(seg.src) != NONE)
    rng = np.random.default_rng(20261121)
    picks = rng.choice(mapped, size=n, replace=len(mapped) < n)
    return [[int(seg.gen_line[i]) + 1, int(seg.gen_col[i]) + 1] for i in picks]


# --- native -------------------------------------------------------------------------------

_HEADER = """#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

namespace gen{f} {{
template <typename T, int N> struct Box {{
  T value;
  __attribute__((always_inline)) inline long twist(long x) const {{ return x * N + (long)sizeof(T); }}
}};
template <typename T, int N> __attribute__((always_inline)) static inline long leaf(long x) {{
  Box<T, N> b{{}}; return b.twist(x) ^ (x >> 3);
}}
template <typename T, int N> __attribute__((always_inline)) static inline long middle(long x) {{
  auto f = [x](long y) {{ return leaf<T, N>(y + x); }}; return f(x * 3) + leaf<T, N + 1>(x);
}}
template <typename T, int N> __attribute__((always_inline)) static inline long outer(long x) {{
  return middle<T, N>(x) - middle<T, N + 2>(x ^ N);
}}
template <typename T, int N> __attribute__((noinline)) long entry(std::vector<T>& v, std::map<int, T>& m, long x) {{
  std::sort(v.begin(), v.end(), [](const T& a, const T& b) {{ return a.key < b.key; }});
  long acc = std::accumulate(v.begin(), v.end(), 0L, [](long s, const T& t) {{ return s + t.key; }});
  for (auto& kv : m) acc += outer<T, N>(kv.first + kv.second.key);
  std::function<long(long)> g = [&](long y) {{ return outer<T, N + 1>(y + acc); }};
  return g(x) + (long)v.size();
}}
"""

_TYPE = """struct S{f}_{t} {{
  long key; int tag{t}; std::string label; std::vector<int> extra;
  bool operator<(const S{f}_{t}& o) const {{ return key < o.key; }}
}};
"""

_DRIVER = """long run_{t}(long x) {{
  std::vector<S{f}_{t}> v(3); std::map<int, S{f}_{t}> m; m[1] = v[0];
  std::shared_ptr<S{f}_{t}> p = std::make_shared<S{f}_{t}>(); v.push_back(*p);
  long acc = 0;
{calls}  return acc;
}}
"""


def _cpp_file(f: int, n_types: int, n_values: int) -> str:
    """One translation unit: `n_types` structs, each used by `n_values` instantiations of `entry`."""
    parts = [_HEADER.format(f=f)]
    for t in range(n_types):
        parts.append(_TYPE.format(f=f, t=t))
        calls = "".join(f"  acc += entry<S{f}_{t}, {k}>(v, m, x + {k});\n" for k in range(n_values))
        parts.append(_DRIVER.format(f=f, t=t, calls=calls))
    parts.append("}\n")
    parts.append(f"long run_file{f}(long x) {{\n  long acc = 0;\n")
    parts.extend(f"  acc += gen{f}::run_{t}(x);\n" for t in range(n_types))
    parts.append("  return acc;\n}\n")
    return "".join(parts)


def _main_file(n_files: int) -> str:
    decls = "".join(f"long run_file{f}(long x);\n" for f in range(n_files))
    calls = "".join(f"  acc += run_file{f}(argc);\n" for f in range(n_files))
    return f"{decls}int main(int argc, char**) {{\n  long acc = 0;\n{calls}  return (int)(acc & 1);\n}}\n"


def dwarf_size(binary: Path) -> int:
    """Bytes of all `.debug_*` sections, as `readelf -S` lists them."""
    from elftools.elf.elffile import ELFFile

    with open(binary, "rb") as fh:
        return sum(s["sh_size"] for s in ELFFile(fh).iter_sections() if s.name.startswith(".debug_"))


def native_input(quick: bool, n_addresses: int, jobs: int = 2) -> NativeInput:
    """Generate and compile the program unless the same parameters already built it."""
    n_files, n_types, n_values = (2, 6, 6) if quick else (26, 6, 6)
    name = "quick" if quick else "full"
    out = WORK / "native" / name
    out.mkdir(parents=True, exist_ok=True)
    binary = out / "bench_program"
    sources = {f"gen{f}.cpp": _cpp_file(f, n_types, n_values) for f in range(n_files)}
    sources["main.cpp"] = _main_file(n_files)
    digest = hashlib.sha256("".join(sources.values()).encode()).hexdigest()[:16]
    params = {"v": GENERATOR_VERSION, "sources": digest}
    stamp = out / "stamp.json"
    if not _stamp_ok(stamp, params) or not binary.exists():
        for fname, text in sources.items():
            (out / fname).write_text(text)

        def compile_one(fname: str) -> Path:
            obj = out / (fname + ".o")
            subprocess.run(["clang++", "-O1", "-g", "-std=c++17", "-c", str(out / fname), "-o", str(obj)],
                           check=True)
            return obj

        with ThreadPoolExecutor(max_workers=jobs) as pool:
            objects = list(pool.map(compile_one, sorted(sources)))
        subprocess.run(["clang++", "-Wl,--build-id=sha1", *map(str, objects), "-o", str(binary)], check=True)
        for obj in objects:
            obj.unlink()
        stamp.write_text(json.dumps(params))
    addresses = out / f"addresses-{n_addresses}.json"
    if not addresses.exists() or addresses.stat().st_mtime < stamp.stat().st_mtime:
        addresses.write_text(json.dumps(_sample_addresses(binary, n_addresses)))
    return NativeInput(binary, dwarf_size(binary), addresses, "x86_64")


def _sample_addresses(binary: Path, n: int) -> list[int]:
    """Return addresses: a random byte past the start of a random function (never its first byte)."""
    from elftools.elf.elffile import ELFFile
    from elftools.elf.sections import SymbolTableSection

    with open(binary, "rb") as fh:
        symtab = ELFFile(fh).get_section_by_name(".symtab")
        assert isinstance(symtab, SymbolTableSection), f"{binary}: no .symtab"
        funcs = sorted({(s["st_value"], s["st_size"]) for s in symtab.iter_symbols()
                        if s["st_info"]["type"] == "STT_FUNC" and s["st_size"] > 1 and s["st_value"]})
    rng = random.Random(20261121)
    picks = []
    for _ in range(n):
        start, size = funcs[rng.randrange(len(funcs))]
        picks.append(start + rng.randrange(1, size + 1))
    return picks
