"""The fuzz targets: one module each, all with the same small surface.

A target module provides:

- `run(data: bytes) -> None`: one input through the real entry points the service and
  the CLI call. Both engines feed it bytes, so every crash, whichever engine found it, is
  a file that `python -m fuzz --reproduce` replays and a regression test can inline;
- `inputs() -> SearchStrategy[bytes]`: hypothesis inputs, built structurally and then
  encoded to those same bytes;
- `seeds() -> dict[str, bytes]`: the atheris corpus, taken from `tests/fixtures`
  (`python -m fuzz --write-corpus` writes it to `fuzz/corpus/<target>/`);
- optionally `mutate(data, max_size, seed) -> bytes`: a structure-aware libFuzzer mutator.

The registry below names each target, says what it covers, and lists the modules atheris
instruments for coverage: the engines the target exercises (and libraries they hand untrusted
bytes to, such as pyelftools), not the service plumbing imported along the way, whose
instrumentation would cost start-up time and add no useful feedback. Target modules are
imported lazily, by name, so that the atheris child imports them (and the engine modules they
import) inside `atheris.instrument_imports()`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

CORPUS = Path(__file__).resolve().parent.parent / "corpus"


@dataclass(frozen=True)
class Target:
    name: str
    module: str
    summary: str
    instrument: tuple[str, ...]
    corpus_dir: Path | None = None
    """The seed corpus; `fuzz/corpus/<name>/` unless given."""

    def load(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def corpus(self) -> Path:
        return self.corpus_dir or CORPUS / self.name


TARGETS: dict[str, Target] = {t.name: t for t in (
    Target("vlq", "fuzz.targets.vlq", "VLQ `mappings` decoding, differential against a plain reference decoder",
           ("symbolicator.sourcemaps.vlq",)),
    Target("sourcemap", "fuzz.targets.sourcemap",
           "source-map parsing (regular + index maps), sourcemap-cache build and lookups",
           ("symbolicator.sourcemaps", "symbolicator.service.js.lookup")),
    Target("original_names", "fuzz.targets.original_names",
           "original sources (JavaScript / TypeScript `sourcesContent`) parsed for the names of inlined code",
           ("symbolicator.sourcemaps.scopes", "symbolicator.sourcemaps.inlining"), CORPUS / "sourcemap"),
    Target("skeleton", "fuzz.targets.skeleton",
           "a minified file's skeleton (function-free groups blanked) parsed for scopes, differential against the "
           "whole parse", ("symbolicator.sourcemaps.skeleton",)),
    Target("objects", "fuzz.targets.objects",
           "ELF / Mach-O (thin + fat) identification, DWARF + symtab → symcache, lookups",
           ("symbolicator.native", "symbolicator.service.native.modules", "elftools")),
    Target("pe", "fuzz.targets.pe",
           "PE images: headers, CodeView, exports, MinGW DWARF → symcache, lookups, PDB pairing",
           ("symbolicator.native.pe", "symbolicator.native.dwarf", "symbolicator.native.symcache_write")),
    Target("apple_crash", "fuzz.targets.apple_crash",
           "Apple `.crash` / `.ips` parsing → `/symbolicate` request → native symbolication",
           ("symbolicator.native", "symbolicator.service.native", "symbolicator.types")),
    Target("minidump", "fuzz.targets.minidump",
           "minidump reading and stack walking (CFI, frame pointers, scanning); .eh_frame and Mach-O "
           "__unwind_info → CFI cache",
           ("symbolicator.native.minidump", "symbolicator.native.cfi")),
    Target("requests", "fuzz.targets.request_models",
           "`/symbolicate` and `/symbolicate-js` JSON bodies → request models → symbolication",
           ("symbolicator.service.native", "symbolicator.service.js", "symbolicator.native", "symbolicator.sourcemaps",
            "symbolicator.web.bodies", "symbolicator.types")),
    Target("wasm", "fuzz.targets.wasm",
           "WebAssembly modules: identification, DWARF → symcache in module offsets, lookups, V8 frame checks",
           ("symbolicator.native.wasm", "symbolicator.native.dwarf", "symbolicator.native.symcache_build",
            "symbolicator.native.symcache_write", "symbolicator.native.objects")),
    Target("pdb", "fuzz.targets.pdb", "PDB (MSF 7.00) identification, PDB → symcache conversion, lookups",
           ("symbolicator.native.pdb",)),
    Target("proguard", "fuzz.targets.proguard",
           "ProGuard / R8 mappings → ProGuard cache → remapping and retrace; cache bytes",
           ("symbolicator.proguard",)),
    Target("endpoints", "fuzz.targets.endpoints",
           "request S3 endpoints and host names, differential against urllib3's `parse_url` and the IDNA codec",
           ("symbolicator.sources.s3_guard", "symbolicator.fetch_policy")),
)}
