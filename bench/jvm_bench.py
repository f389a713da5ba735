"""The JVM engine beside its peers, in one run, as ratios: `python -m bench.jvm_bench [--quick]`.

Input: a generated mapping shaped like ProGuard's (classes renamed, methods with line ranges,
inline chains `a:b:m():c:d -> x` followed by their callers, fields), and a trace of frames drawn
from it. Three rows, ours and the peer alternately (A B B A …), best of each side:

- conversion: mapping bytes → our ProGuard cache (parse + build) vs `symbolic.ProguardMapper.open`
  (which parses and indexes), in this process;
- remapping: every frame of the trace through the opened cache vs symbolic's `remap_frame`;
- the whole command: `symbolicator symbolicate TRACE --mapping M --no-cache` vs
  `java -jar proguard-retrace.jar M TRACE`, each a fresh process (start-up included).

Nothing here asserts a time; the machine may be shared, so read the ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

RETRACE_JAR = "/usr/share/java/proguard-retrace.jar"
REPO = Path(__file__).resolve().parent.parent


def make_mapping(classes: int, methods: int, seed: int = 7) -> tuple[bytes, list[tuple[str, str, int]]]:
    rng = random.Random(seed)
    lines: list[str] = []
    frames: list[tuple[str, str, int]] = []
    for c in range(classes):
        original, obfuscated = f"com.example.pkg{c % 97}.Class{c}", f"a.b.c{c}"
        lines.append(f"{original} -> {obfuscated}:")
        lines.append(f"    java.lang.String field{c} -> a")
        line = 10
        for m in range(methods):
            obf = chr(ord("a") + m % 26)
            span = rng.randint(1, 30)
            if m % 5 == 4:  # an inline chain of two
                start = 1000 + m * 100
                lines.append(f"    {start}:{start + span}:void inlined{m}(int):{line}:{line + span} -> {obf}")
                lines.append(f"    {start}:{start + span}:void caller{m}():{line + 40} -> {obf}")
                frames.append((obfuscated, obf, start + rng.randint(0, span)))
            else:
                lines.append(f"    {line}:{line + span}:int method{m}(java.lang.String,int) -> {obf}")
                frames.append((obfuscated, obf, line + rng.randint(0, span)))
            line += span + 3
    rng.shuffle(frames)
    return ("\n".join(lines) + "\n").encode(), frames


def best(fn: Callable[[], object], repeat: int) -> float:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def interleaved(ours: Callable[[], object], peer: Callable[[], object], pairs: int) -> tuple[float, float]:
    a: list[float] = []
    b: list[float] = []
    for i in range(pairs):
        first, second = (ours, peer) if i % 2 == 0 else (peer, ours)
        x, y = best(first, 1), best(second, 1)
        (a if first is ours else b).append(x)
        (b if first is ours else a).append(y)
    return min(a), min(b)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The JVM engine beside symbolic and ProGuard's retrace.")
    parser.add_argument("--quick", action="store_true", help="a small mapping and trace")
    quick = parser.parse_args(argv).quick
    classes, methods, trace_frames = (500, 20, 500) if quick else (5000, 20, 5000)
    from symbolic import ProguardMapper

    from symbolicator.proguard import convert
    from symbolicator.proguard.cache import ProguardCache
    from symbolicator.proguard.remap import Remapper

    data, frames = make_mapping(classes, methods)
    frames = frames[:trace_frames]
    with tempfile.TemporaryDirectory() as tmp:
        mapping = Path(tmp, "mapping.txt")
        mapping.write_bytes(data)
        trace = Path(tmp, "trace.txt")
        trace.write_text("java.lang.IllegalStateException: bench\n"
                         + "".join(f"\tat {c}.{m}(SourceFile:{line})\n" for c, m, line in frames))
        rows = []
        ours, peer = interleaved(lambda: convert(data), lambda: ProguardMapper.open(str(mapping)), 4)
        rows.append(("conversion (parse + index)", ours, peer, "symbolic ProguardMapper.open"))
        remapper = Remapper(ProguardCache(convert(data)))
        mapper = ProguardMapper.open(str(mapping))
        ours, peer = interleaved(lambda: [remapper.candidates(*f) for f in frames],
                                 lambda: [mapper.remap_frame(*f) for f in frames], 4)
        rows.append((f"remap {len(frames)} frames", ours, peer, "symbolic remap_frame"))
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        cli = [sys.executable, "-m", "symbolicator", "symbolicate", str(trace), "--mapping", str(mapping), "--no-cache"]
        jar = ["java", "-jar", RETRACE_JAR, str(mapping), str(trace)]
        outputs: dict[str, str] = {}

        def run(name: str, cmd: list[str]) -> Callable[[], object]:
            def go() -> None:
                outputs[name] = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
            return go

        ours, peer = interleaved(run("ours", cli), run("retrace", jar), 3)
        rows.append(("whole command, fresh process", ours, peer, "java -jar proguard-retrace.jar"))
    same = outputs["ours"] == outputs["retrace"]
    print(f"mapping: {classes} classes x {methods} methods, {len(data) / 1e6:.1f} MB; trace: {len(frames)} frames; "
          f"output identical to retrace: {same}")
    print("| row | ours (s) | peer (s) | ours / peer | peer |")
    print("| --- | --- | --- | --- | --- |")
    for name, a, b, who in rows:
        print(f"| {name} | {a:.3f} | {b:.3f} | {a / b:.2f}x | {who} |")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
