"""Find a module's debug file on the external symbol sources.

The native service asks its scope's uploads first; when they have nothing it calls
`find_debug_file(plan, module, dest_dir, fetcher=…, max_bytes=…, purpose=…)`. Sources are tried
in order; on each, the debug file type first, then the code file, then the Breakpad `.sym` file
(docs/configuration.md, "Symbol sources": ELF debug > ELF code > breakpad, dSYM > Mach-O code >
breakpad, wasm debug > wasm code > breakpad, PDB > PE; Symbolicator's `FileType::from_object_type`), each at
every path its layout gives. A
download only counts once `objects.identify` has read it and one object in it has the module's
ids (and a compatible arch): anything else at the right path is a `malformed` candidate, never a hit.
What counts as best depends on the purpose, as Symbolicator's `ObjectPurpose`:

* `debug` (symcaches): the search stops at the first hit that carries debug info (or the first
  source bundle); otherwise the best hit seen is kept (debug info, then debug file type, then
  symbols; earlier sources win ties), so a stripped executable on one source does not hide a
  dSYM or a `.sym` with LINE records on the next;
* `unwind` (CFI caches): only a hit with unwind information counts, the first one wins, so a
  split debug file whose `.eh_frame` is NOBITS gives way to the executable or `.sym` beside it.

Every place looked at becomes a Symbolicator candidate (`{source, location, download}`),
including request sources that were skipped and why. Downloads land in `dest_dir` under
fresh names; everything but the returned file is deleted, also on cancellation. Caching,
negative entries and coalescing are the caller's, and so are the S3 clients (`S3Clients`, which the
native service keeps for its lifetime): this module keeps no state across calls.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from symbolicator.errors import DownloadMiss, FormatError
from symbolicator.fetch import Fetcher
from symbolicator.native.objects import ObjectInfo, identify
from symbolicator.sources.config import (
    SENTRY_SKIPPED,
    FilesystemSource,
    HttpSource,
    S3Source,
    SentrySource,
    SourceConfig,
    SourceFilters,
    SourcePlan,
)
from symbolicator.sources.download import S3Clients, download, location
from symbolicator.sources.layouts import (
    BREAKPAD,
    CODE_FILE_TYPES,
    DEBUG_FILE_TYPES,
    FILE_FORMATS,
    FileType,
    ModuleQuery,
    candidate_paths,
)
from symbolicator.types import Arch

log = logging.getLogger(__name__)

LookupStatus = Literal["found", "missing", "malformed", "fetching_failed", "timeout"]
Purpose = Literal["debug", "unwind", "source"]
NO_FILES = "No object files listed on this source"
_ARCH_FAMILY = {Arch.ARM64E: Arch.ARM64, Arch.X86_64H: Arch.X86_64, Arch.ARMV7: Arch.ARM}


@dataclass(frozen=True, slots=True)
class SourceLookupResult:
    """The outcome of one module's search.

    `path` is the downloaded file in `dest_dir` (now the caller's), or None. `object_info`
    describes the matching object in it: for a universal Mach-O, the slice (`fat`, `offset`,
    `size`; `objects.copy_slice` extracts it). `candidates` are Symbolicator candidate dicts in
    search order. `status` is `found`, or why nothing was: `malformed` beats `timeout` beats
    `fetching_failed` (noperm / errors) beats `missing`.
    """

    path: Path | None
    object_info: ObjectInfo | None
    candidates: list[dict[str, Any]]
    status: LookupStatus
    source_id: str | None = None
    file_type: FileType | None = None
    location: str | None = None


@dataclass(slots=True)
class _Hit:
    path: Path
    info: ObjectInfo
    source_id: str
    file_type: FileType
    location: str

    @property
    def rank(self) -> tuple[bool, bool, bool]:
        f = self.info.features
        return (f.has_debug_info, self.file_type in DEBUG_FILE_TYPES.values(), f.has_symbols)


async def find_debug_file(sources: SourcePlan | Sequence[SourceConfig], module: ModuleQuery, dest_dir: Path, *,
                          fetcher: Fetcher, max_bytes: int, purpose: Purpose = "debug",
                          s3_clients: S3Clients | None = None) -> SourceLookupResult:
    """The best debug, code or `.sym` file for `module` and `purpose` on `sources`; downloads go to `dest_dir`."""
    if module.object_type not in DEBUG_FILE_TYPES:
        raise ValueError(f"external sources serve ELF, Mach-O, PE and wasm modules, not {module.object_type!r}")
    types = (DEBUG_FILE_TYPES[module.object_type], CODE_FILE_TYPES[module.object_type], BREAKPAD)
    return await _search(sources, module, dest_dir, types, fetcher, max_bytes, purpose, s3_clients)


def _suits(hit: _Hit, purpose: Purpose) -> bool:
    """Whether a verified hit can serve `purpose` at all (Symbolicator's `object_has_features`)."""
    return hit.info.features.has_unwind_info if purpose == "unwind" else True


def _enough(hit: _Hit, purpose: Purpose) -> bool:
    """Whether no later hit can beat this one, so the search stops here."""
    return purpose != "debug" or hit.info.features.has_debug_info


async def _search(sources: SourcePlan | Sequence[SourceConfig], module: ModuleQuery, dest_dir: Path,
                  file_types: Sequence[FileType], fetcher: Fetcher, max_bytes: int,
                  purpose: Purpose, s3_clients: S3Clients | None) -> SourceLookupResult:
    plan = sources if isinstance(sources, SourcePlan) else SourcePlan(tuple(sources))
    s3_clients = s3_clients if s3_clients is not None else S3Clients()  # one search: one client per source
    candidates: list[dict[str, Any]] = [_candidate(s.id, s.reason, "notfound") for s in plan.skipped]
    misses: set[str] = set()
    best: _Hit | None = None
    try:
        for source in plan.sources:
            if isinstance(source, SentrySource):
                candidates.append(_candidate(source.id, SENTRY_SKIPPED, "notfound"))
                continue
            types = [ft for ft in file_types if accepts(source.filters, ft, module)]
            if not types:
                continue
            looked = False
            for ft in types:
                for rel in candidate_paths(source.layout, ft, module):
                    looked = True
                    hit = await _try(source, rel, ft, module, dest_dir, fetcher, max_bytes, s3_clients, candidates,
                                     misses)
                    if hit is None:
                        continue
                    if not _suits(hit, purpose):
                        hit.path.unlink(missing_ok=True)
                        continue
                    if best is None or hit.rank > best.rank:
                        if best is not None:
                            best.path.unlink(missing_ok=True)
                        best = hit
                    else:
                        hit.path.unlink(missing_ok=True)
                    if _enough(best, purpose):
                        return _found(best, candidates)
            if not looked:
                candidates.append(_candidate(source.id, NO_FILES, "notfound"))
    except BaseException:
        if best is not None:
            best.path.unlink(missing_ok=True)
        raise
    if best is not None:
        return _found(best, candidates)
    return SourceLookupResult(None, None, candidates, _miss_status(misses))


async def _try(source: FilesystemSource | HttpSource | S3Source, rel: str, ft: FileType, module: ModuleQuery,
               dest_dir: Path, fetcher: Fetcher, max_bytes: int, s3_clients: S3Clients,
               candidates: list[dict[str, Any]], misses: set[str]) -> _Hit | None:
    """Download and verify one location; records its candidate; a verified hit or None."""
    loc = location(source, rel)
    dest = dest_dir / f"{uuid.uuid4().hex}.download"
    try:
        await download(source, rel, dest, fetcher=fetcher, max_bytes=max_bytes, s3_clients=s3_clients)
        info = await asyncio.to_thread(verify, dest, module, ft)
    except DownloadMiss as miss:
        dest.unlink(missing_ok=True)
        misses.add("timeout" if miss.timeout else miss.status)
        candidates.append(_candidate(source.id, loc, miss.status, miss.details))
        log.debug("source %s: %s at %s (%s)", source.id, miss.status, loc, miss.details)
        return None
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    f = info.features
    candidate = _candidate(source.id, loc, "ok")
    candidate["download"]["features"] = {"has_debug_info": f.has_debug_info, "has_unwind_info": f.has_unwind_info,
                                         "has_symbols": f.has_symbols, "has_sources": f.has_sources}
    candidates.append(candidate)
    return _Hit(dest, info, source.id, ft, loc)


def verify(path: Path, module: ModuleQuery, file_type: FileType) -> ObjectInfo:
    """The object in the file at `path` that is `module`; raises DownloadMiss("malformed") otherwise."""
    try:
        objects = identify(path)
    except FormatError as e:
        raise DownloadMiss("malformed", str(e)) from None
    except OSError as e:
        raise DownloadMiss("error", f"cannot read the download: {e}") from None
    want = FILE_FORMATS[file_type]
    same_ids = [o for o in objects if o.file_format == want and not o.artifact_bundle and _ids_match(o, module)]
    if module.arch is not Arch.UNKNOWN:
        exact = [o for o in same_ids if o.arch is module.arch]
        same_ids = exact or [o for o in same_ids if o.arch is Arch.UNKNOWN or _family(o.arch) is _family(module.arch)]
    if same_ids:
        return same_ids[0]
    found = ", ".join(f"{o.file_format} {o.arch.value} debug_id={o.debug_id} code_id={o.code_id}" for o in objects)
    raise DownloadMiss("malformed", f"no object matches debug_id={module.debug_id} code_id={module.code_id} "
                                    f"arch={module.arch.value} (the file has: {found or 'nothing'})")


def _ids_match(o: ObjectInfo, m: ModuleQuery) -> bool:
    """Same ids; a PDB (or PE) may have a higher age than asked for, never a lower one (`DebugId.serves`)."""
    compared = False
    if m.debug_id is not None and o.debug_id is not None:
        if not o.debug_id.serves(m.debug_id):
            return False
        compared = True
    if m.code_id is not None and o.code_id is not None:
        if o.code_id != m.code_id:
            return False
        compared = True
    return compared


def _family(arch: Arch) -> Arch:
    return _ARCH_FAMILY.get(arch, arch)


def accepts(filters: SourceFilters, file_type: FileType, module: ModuleQuery) -> bool:
    """Whether a source's filters let it be asked for `file_type` of `module`
    (docs/configuration.md, "Symbol sources")."""
    if filters.filetypes and file_type not in filters.filetypes:
        return False
    if not filters.path_patterns:
        return True
    names = [n.replace("\\", "/").lower() for n in (module.code_file, module.debug_file) if n]
    return any(fnmatch.fnmatchcase(name, p.replace("\\", "/").lower())
               for p in filters.path_patterns for name in names)


def _candidate(source_id: str, loc: str, status: str, details: str | None = None) -> dict[str, Any]:
    download: dict[str, Any] = {"status": status}
    if details:
        download["details"] = details
    return {"source": source_id, "location": loc, "download": download}


def _found(hit: _Hit, candidates: list[dict[str, Any]]) -> SourceLookupResult:
    return SourceLookupResult(hit.path, hit.info, candidates, "found", hit.source_id, hit.file_type, hit.location)


def _miss_status(misses: set[str]) -> LookupStatus:
    if "malformed" in misses:
        return "malformed"
    if "timeout" in misses:
        return "timeout"
    if misses & {"noperm", "error"}:
        return "fetching_failed"
    return "missing"
