"""Chaos runs: real faults injected into the real service, every request accounted for.

    python -m chaos [--scenario NAME ...] [--quick] [--out PATH] [--keep]

Each scenario starts its own service (a subprocess, as users run it) and the
real components around it (SeaweedFS, websites on 127.0.0.1), breaks one of
them, and counts what every request got: `load.py` is the client process that
sends the load and follows `pending` answers to their end, `rig.py` samples the
service's memory from /proc and collects a `Result`, `report.py` writes
`chaos/RESULTS.md` (and a `.json` beside it). Nothing asserts a time.

| module | scenario |
| --- | --- |
| `outage.py` | `seaweed-outage`: S3 stopped for 60 s under steady load |
| `cache_faults.py` | `cache-faults`: cache files damaged at rest and in use; the cache disk full |
| `crashes.py` | `kill-during-upload`, `kill-during-conversion`, `worker-kill`: SIGKILL |
| `overload.py` | `overload`: 500 clients for 60 s against slow (10 s) and huge (60 MB) websites; `overload-slow`: the same without the huge one |

`inject.py` holds the fault injectors and `workload.py` the requests and their
truth; both are shared with `tests/test_faults.py`, the CI-sized versions of
the same faults.
"""
