"""Fuzzing harnesses for the engines' entry points (issue 6, "Robustness → Fuzzing").

Five targets (`fuzz.targets`) feed untrusted bytes to the code the service and the CLI
call — VLQ decoding, source maps and their caches, object files and their symcaches,
Apple crash reports, request bodies — under one contract (`fuzz.contract`): return, or
raise one of the project's typed errors, within the per-input time limit. Two engines
drive them: hypothesis with structured strategies (`engine_hypothesis`) and atheris,
coverage-guided, one subprocess per target (`engine_atheris`). `python -m fuzz --help`
runs them; `fuzz/README.md` explains the targets and how a crash becomes a test.
"""
