"""`chaos/RESULTS.md`: what was injected, what every request got, what was checked, the figures."""

from __future__ import annotations

import json
from typing import Any

from bench.report import machine
from chaos.rig import Result


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _recovery(result: Result) -> str:
    return "; ".join(f"{what}: {seconds} s" for what, seconds in result.recovery_s.items()) or "–"


def render(results: list[Result], command: str, started: dict[str, Any], seconds: float) -> str:
    lines = [
        "# Chaos results",
        "",
        "Faults injected into the real service (`python -m chaos`, see `chaos/__init__.py`); the short",
        "versions of the same faults run in CI as `tests/test_faults.py`. A scenario passes when every check",
        "below it holds. Nothing here asserts a time: durations and recovery times are measured figures.",
        "",
        f"- date: {started['date']}",
        f"- machine: {started['cpu']}, {started['cores']} cores, Python {started['python']}, host `{started['host']}`",
        f"- load average at start: {', '.join(f'{x:.2f}' for x in started['load'])} (the machine is shared)",
        f"- command: `{command}` ({seconds:.0f} s)",
        "",
        "| scenario | injected | requests sent | answered | errors | recovery | peak RSS (service + workers) | verdict |",
        "| --- | --- | ---: | ---: | --- | --- | ---: | --- |",
    ]
    for r in results:
        failed = [what for what, passed in r.checks if not passed] + ([r.error] if r.error else [])
        lines.append(f"| `{r.name}` | {_cell(r.injected)} | {r.sent} | {r.answered} | "
                     f"{_cell('; '.join(failed)) or 'none'} | {_cell(_recovery(r))} | "
                     f"{r.memory.peak_rss_mib:.0f} MiB | {'pass' if r.ok else '**FAIL**'} |")
    for r in results:
        lines += ["", f"## `{r.name}`: {'pass' if r.ok else 'FAIL'} ({r.duration_s:.0f} s)", "", f"Injected: {r.injected}.", ""]
        if r.error:
            lines += [f"**The scenario stopped with an error:** `{_cell(r.error)}`", ""]
        if r.requests:
            lines += ["| requests | outcome | count |", "| --- | --- | ---: |"]
            for kind, outcomes in r.requests.items():
                for outcome, n in sorted(outcomes.items(), key=lambda kv: -kv[1]):
                    lines.append(f"| {_cell(kind)} | {_cell(outcome)} | {n} |")
            lines += ["", (f"Sent {r.sent}, answered {r.answered} (an answer is a result, a `pending` polled to its "
                           "end, or a 503 with Retry-After; `lost` and `unanswered` are not answers)."), ""]
        lines += ["Checks:", ""]
        lines += [f"- {'✓' if passed else '✗'} {what}" for what, passed in r.checks]
        m = r.memory
        lines += ["", f"Memory: peak VmRSS of the service and its workers together {m.peak_rss_mib:.0f} MiB, "
                  f"highest VmHWM of one process {m.peak_hwm_mib:.0f} MiB ({m.samples} samples)"
                  + ("; **the RSS limit was exceeded and the service was killed**" if m.over_limit else "") + "."]
        if len(m.timeline) > 1:
            lines += ["", "VmRSS over time (s → MiB): " + ", ".join(f"{t:.0f} → {mib:.0f}" for t, mib in m.timeline)
                      + "."]
        if r.recovery_s:
            lines += ["", "Recovery: " + _recovery(r) + "."]
        if r.figures:
            lines += ["", "Figures:", ""]
            lines += [f"- {what}: `{json.dumps(value) if not isinstance(value, str) else value}`"
                      for what, value in r.figures.items()]
        if r.notes:
            lines += ["", *[f"Note: {n}" for n in r.notes]]
    lines.append("")
    return "\n".join(lines)


__all__ = ["machine", "render"]
