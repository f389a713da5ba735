"""`python -m fuzz`: run the fuzz targets with hypothesis and/or atheris, and record the figures.

    python -m fuzz [--target NAME ...] [--engine hypothesis|atheris|both] [--runs N] [--max-seconds S]
    python -m fuzz --reproduce FILE --target NAME
    python -m fuzz --write-corpus [--target NAME ...]

Targets run one after another (the machine is shared), each engine for `--runs` inputs
or `--max-seconds`, whichever comes first. Progress goes to stderr; the figures go to
`fuzz/RESULTS.md` (and `fuzz/results.json`); crash inputs to `fuzz/crashes/<target>/`.
The exit status is 1 when any target crashed.
"""

from __future__ import annotations

import argparse
import random
import shlex
import shutil
import sys
import traceback
from pathlib import Path

from fuzz import engine_atheris, engine_hypothesis, results
from fuzz.contract import DEFAULT_TIME_LIMIT, Violation, check
from fuzz.outcome import CRASHES, Outcome
from fuzz.targets import TARGETS, Target


def parse_args(argv: list[str]) -> argparse.Namespace:
    targets = "\n".join(f"  {t.name:<12} {t.summary}" for t in TARGETS.values())
    parser = argparse.ArgumentParser(
        prog="python -m fuzz",
        description="Fuzz the engines' entry points; every input must return or raise a typed error, in time.",
        epilog=f"targets:\n{targets}\n\nSee fuzz/README.md for the contract and how a crash becomes a test.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--target", action="append", choices=sorted(TARGETS), metavar="NAME",
                        help="a target to run (repeatable; default: all, in the order listed below)")
    parser.add_argument("--engine", choices=("hypothesis", "atheris", "both"), default="both",
                        help="structured property-based inputs, coverage-guided mutation, or both (default)")
    parser.add_argument("--runs", type=int, default=10_000, metavar="N",
                        help="inputs per target and engine (default: 10000)")
    parser.add_argument("--max-seconds", type=float, metavar="S",
                        help="time budget per target and engine (default: none, run all inputs)")
    parser.add_argument("--time-limit", type=float, default=DEFAULT_TIME_LIMIT, metavar="S",
                        help=f"per-input limit; a slower input is a hang (default: {DEFAULT_TIME_LIMIT:g})")
    parser.add_argument("--seed", type=int, help="random seed for both engines (default: a fresh one, printed)")
    parser.add_argument("--crash-dir", type=Path, default=CRASHES, metavar="DIR",
                        help="where crash inputs are saved, one folder per target (default: fuzz/crashes)")
    parser.add_argument("--no-record", action="store_true", help="do not update fuzz/RESULTS.md")
    parser.add_argument("--reproduce", type=Path, metavar="FILE",
                        help="replay one saved input against --target and print what it raises")
    parser.add_argument("--write-corpus", action="store_true",
                        help="rewrite fuzz/corpus/<target>/ from the targets' seeds in tests/fixtures")
    args = parser.parse_args(argv)
    if args.reproduce and (not args.target or len(args.target) != 1):
        parser.error("--reproduce needs exactly one --target")
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def reproduce(target: Target, path: Path, time_limit: float) -> int:
    data = path.read_bytes()
    try:
        check(target.load().run, data, time_limit)
    except Violation as exc:
        traceback.print_exception(exc)
        return 1
    print(f"{path}: {len(data)} bytes, kept the contract on {target.name}")
    return 0


def write_corpus(targets: list[Target]) -> None:
    for target in targets:
        seeds = target.load().seeds()
        shutil.rmtree(target.corpus, ignore_errors=True)
        target.corpus.mkdir(parents=True)
        for name, data in seeds.items():
            (target.corpus / name).write_bytes(data)
        size = sum(len(d) for d in seeds.values())
        print(f"{target.corpus}: {len(seeds)} seeds, {size // 1024} KiB", file=sys.stderr)


def run_all(targets: list[Target], args: argparse.Namespace, seed: int) -> list[Outcome]:
    engines = ("hypothesis", "atheris") if args.engine == "both" else (args.engine,)
    outcomes = []
    for target in targets:
        for engine in engines:
            folder = args.crash_dir / target.name
            if engine == "hypothesis":
                outcome = engine_hypothesis.run(target, args.runs, args.max_seconds, args.time_limit, folder, seed)
            else:
                outcome = engine_atheris.run(target, args.runs, args.max_seconds, args.time_limit, folder, seed)
            outcomes.append(outcome)
            if outcome.crashes:
                print(f"[fuzz {engine} {target.name}] CRASH saved to {outcome.crashes[0]}\n{outcome.detail[-4000:]}",
                      file=sys.stderr)
            if outcome.error:
                print(f"[fuzz {engine} {target.name}] ERROR {outcome.error}", file=sys.stderr)
    return outcomes


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    targets = [TARGETS[name] for name in (args.target or TARGETS)]
    if args.reproduce:
        return reproduce(targets[0], args.reproduce, args.time_limit)
    if args.write_corpus:
        write_corpus(targets)
        return 0
    seed = args.seed if args.seed is not None else random.randrange(1, 2**31)
    print(f"[fuzz] seed {seed}", file=sys.stderr)
    outcomes = run_all(targets, args, seed)
    if not args.no_record:
        results.record(outcomes, shlex.join(["python", "-m", "fuzz", *(argv or sys.argv[1:])]), seed,
                       args.time_limit)
    for o in outcomes:
        status = "ok" if o.ok else f"{len(o.crashes)} crash(es)" if o.crashes else "error"
        print(f"{o.target:<12} {o.engine:<10} {o.inputs:>8} inputs {o.seconds:>7.1f} s  {status}", file=sys.stderr)
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
