"""Native symbolication as the running service offers it: one object per service, built by `Services`.

It holds what outlives a request (`NativeDeps`: the service's storage, caches, coalescer, worker
pool and fetcher, the opened symcaches and the S3 clients of symbol sources; and the converted CFI
caches it has seen), which make a warm request cheap; before, these were module-level dicts shared
by every app in the process. Each request gets its own resolver (its scope's index readers, its
sources) over those.

Every entry point comes in two steps where the HTTP answer needs it: what can refuse the
request (`sources`: 422; `read_apple_crash`: 400/413/422) runs before the job starts, so the
client hears of it at once; the rest (`symbolicate`, `symbolicate_apple_crash`,
`symbolicate_minidump`) is the job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from symbolicator.errors import AttachmentUnavailable, BadRequest, PayloadTooLarge
from symbolicator.metrics import Metrics
from symbolicator.service import minidump
from symbolicator.service.minidump_cfi import CfiLookup, KnownCfiCaches, ResolvedUnwind
from symbolicator.service.native.apple import AppleCrash, apple_crash_request, symbolicate_apple_crash
from symbolicator.service.native.modules import ModuleResolver, NativeDeps, RequestSources, ResolvedModule
from symbolicator.service.native.request import NativeRequest, RawModule, Resolve, symbolicate
from symbolicator.service.parts import ServiceParts
from symbolicator.service.rewrite_rules import RewriteRules
from symbolicator.service.stored_attachments import StoredAttachment, fetch_attachment
from symbolicator.types import Scope


class NativeService:
    """`/symbolicate`, `/applecrashreport`, `/minidump` and the native half of `/symbolicate-any`."""

    def __init__(self, parts: ServiceParts, metrics: Metrics) -> None:
        self.settings, self.caches, self.workers = parts.settings, parts.caches, parts.workers
        self.deps = NativeDeps(**parts.shared(), metrics=metrics)
        self.cfi_caches = KnownCfiCaches()

    def sources(self, request_sources: list[dict[str, Any]] | None) -> RequestSources:
        """Where a request looks beyond its scope's uploads; InvalidShape (422) for bad request sources."""
        return RequestSources.from_request(self.settings, request_sources)

    def resolver(self, scope: Scope, sources: RequestSources) -> Resolve:
        """One request's module lookup: its scope's uploads, then `sources`."""
        lookup = ModuleResolver(self.deps)

        async def resolve(module: RawModule) -> ResolvedModule:
            return await lookup.resolve(scope, module.debug_id, module.code_id, module.type,
                                        module.fields.get("code_file"), module.fields.get("debug_file"), sources)

        return resolve

    def unwind_resolver(self, scope: Scope, sources: RequestSources) -> minidump.ResolveUnwind:
        """One request's CFI lookup: the same search as `resolver`, converting to CFI caches."""
        lookup = CfiLookup(self.deps, self.cfi_caches)

        async def resolve(module: RawModule) -> ResolvedUnwind:
            found = await lookup.resolve(scope, module.debug_id, module.code_id, module.type,
                                         module.fields.get("code_file"), module.fields.get("debug_file"), sources)
            assert isinstance(found, ResolvedUnwind)
            return found

        return resolve

    async def symbolicate(self, req: NativeRequest, scope: Scope,
                          sources: RequestSources | None = None) -> dict[str, Any]:
        """The completed payload of a `/symbolicate` request (`sources`: from `self.sources`, when the
        caller validated them already)."""
        plan = sources if sources is not None else self.sources(req.sources)
        return await symbolicate(req, self.resolver(scope, plan))

    async def read_apple_crash(self, data: bytes, fields: Mapping[str, Any]) -> AppleCrash:
        """The report as a validated request, off the event loop (a report can be megabytes)."""
        return await asyncio.to_thread(apple_crash_request, data, fields, self.settings.limits)

    async def symbolicate_apple_crash(self, crash: AppleCrash, scope: Scope,
                                      sources: RequestSources | None = None) -> dict[str, Any]:
        """The completed payload of an Apple crash report: its fields, then the native answer."""
        plan = sources if sources is not None else self.sources(crash.request.sources)
        return await symbolicate_apple_crash(crash, self.resolver(scope, plan))

    async def read_minidump(self, path: Path) -> dict[str, Any]:
        """The dump's facts and modules (worker pool); `MalformedMinidump` (400) for a broken dump."""
        return await minidump.read_facts(path, self.workers.run)

    async def symbolicate_minidump(self, path: Path, facts: dict[str, Any], fields: dict[str, Any], scope: Scope,
                                   sources: RequestSources | None = None,
                                   rewrite_first_module: RewriteRules | None = None) -> dict[str, Any]:
        """The completed payload of the dump at `path` (`facts` from `read_minidump`)."""
        plan = sources if sources is not None else self.sources(fields.get("sources"))
        return await minidump.symbolicate_minidump(path, facts, fields, self.workers.run, self.resolver(scope, plan),
                                                   self.unwind_resolver(scope, plan), rewrite_first_module)

    async def symbolicate_stored(self, stored: StoredAttachment, scope: Scope,
                                 sources: RequestSources | None = None) -> dict[str, Any]:
        """`/symbolicate-any`'s stored form (the whole job): fetch the minidump or crash report
        through the fetch policy, then answer as `/minidump` or `/applecrashreport` would."""
        plan = sources if sources is not None else self.sources(stored.fields.get("sources"))
        fields: dict[str, Any] = {k: stored.fields[k] for k in ("sources", "options") if k in stored.fields}
        path: Path = await asyncio.to_thread(self.caches.downloads.temp_path, f".{stored.kind}")
        try:
            await fetch_attachment(self.deps.fetcher, stored, path, self.settings.limits.max_body_bytes)
            if stored.kind == "minidump":
                facts = await self.read_minidump(path)
                return await self.symbolicate_minidump(path, facts, fields, scope, plan, stored.rewrite_first_module)
            try:
                crash = await self.read_apple_crash(await asyncio.to_thread(path.read_bytes), stored.fields)
            except (BadRequest, PayloadTooLarge) as exc:
                raise AttachmentUnavailable(f"the stored crash report cannot be symbolicated: {exc}") from exc
            return await self.symbolicate_apple_crash(crash, scope, plan)
        finally:
            await asyncio.to_thread(path.unlink, True)
