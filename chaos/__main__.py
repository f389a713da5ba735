"""`python -m chaos`: run the fault scenarios against the real service and write chaos/RESULTS.md."""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from chaos import cache_faults, crashes, hostile, outage, overload
from chaos.report import machine, render
from chaos.rig import Result, say

HERE = Path(__file__).resolve().parent
SCENARIOS: dict[str, tuple[Callable[[Path, bool], Result], str]] = {
    "seaweed-outage": (outage.run, "SeaweedFS stopped for 60 s under steady load, then back on the same ports"),
    "cache-faults": (cache_faults.run, "cache files corrupted (at rest, while running) and the cache disk full"),
    "kill-during-upload": (crashes.kill_during_upload, "SIGKILL of the service at random moments of uploads"),
    "kill-during-conversion": (crashes.kill_during_conversion, "SIGKILL of the service while it builds a symcache"),
    "worker-kill": (crashes.worker_kill, "SIGKILL of the conversion worker while it builds a symcache"),
    "overload": (overload.run, "500 clients for 60 s against origins that are slow (10 s) and huge (60 MB)"),
    "overload-slow": (overload.run_slow_only, "the same without the huge origin (the overload behaviour alone)"),
    "slow-clients": (hostile.slow_clients, "3,000 half-sent headers and 200 trickled 50 MB bodies beside an honest "
                     "client"),
    "hostile-tenant": (hostile.hostile_tenant, "one scope floods a 10 s website with 50 URLs a request; another "
                       "scope symbolicates throughout"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m chaos",
        description="Inject real faults into the real service (SeaweedFS stopped, cache files corrupted, the "
        "cache disk full, SIGKILL of the service and of its workers, 500 clients against slow and huge "
        "origins), count what every request got, and write chaos/RESULTS.md. Everything runs on 127.0.0.1.",
        epilog="scenarios:\n" + "\n".join(f"  {name:24} {doc}" for name, (_, doc) in SCENARIOS.items())
        + "\n\nThe full run takes about 12 minutes on 2 cores; --quick about 4 and writes chaos/RESULTS-quick.md.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--scenario", action="append", choices=list(SCENARIOS), metavar="NAME",
                   help="run only this scenario (repeatable; default: all)")
    p.add_argument("--quick", action="store_true", help="short durations and few rounds, for a smoke check")
    p.add_argument("--out", type=Path, help="where to write the report (default chaos/RESULTS.md, "
                   "chaos/RESULTS-quick.md with --quick)")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs of every service) afterwards")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = args.scenario or list(SCENARIOS)
    out = args.out or HERE / ("RESULTS-quick.md" if args.quick else "RESULTS.md")
    command = ("python -m chaos " + shlex.join(sys.argv[1:] if argv is None else argv)).strip()
    started_info, started = machine(), time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="chaos-"))
    results: list[Result] = []
    try:
        for name in names:
            say(f"{name}: starting{' (quick)' if args.quick else ''}")
            t0 = time.monotonic()
            try:
                (work / name).mkdir(parents=True)
                result = SCENARIOS[name][0](work / name, args.quick)
            except Exception as exc:  # noqa: BLE001  (a broken scenario is reported; the others still run)
                result = Result(name, SCENARIOS[name][1], error=f"{type(exc).__name__}: {exc}")
                traceback.print_exc()
            result.duration_s = time.monotonic() - t0
            results.append(result)
            say(f"{name}: {'pass' if result.ok else 'FAIL'} in {result.duration_s:.0f} s, "
                f"{result.sent} requests, {result.answered} answered")
    finally:
        if args.keep:
            say(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    out.write_text(render(results, command, started_info, time.monotonic() - started))
    (out.with_suffix(".json")).write_text(json.dumps([r.to_json() for r in results], indent=1))
    say(f"wrote {out}")
    return 0 if all(r.ok for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
