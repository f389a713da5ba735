"""Original function names from originals fetched apart from their map (uploads or scraping).

Why: a map without `sourcesContent` leaves the inlining fix (`sourcemaps/inlining.py`) without
the text it parses, so frames in code the minifier moved out of a function came back named by
the minified scope (the caller it was inlined into). The service usually can fetch that
original anyway (an artifact bundle, release files, or the website, under the same rules as
minified files and maps: `lookup.JsLookup.find_file`). Each such original is converted once, in
the worker pool and within `limits.js_names_max_memory_bytes`, into a small cache of its
functions (`sourcemaps/original_names.py`) keyed by its content (`keys.js_original_names`),
coalesced like every conversion, shared between instances like sourcemap caches, and kept open
in the service's memos; a frame then costs one bisect.

The rule differs from the embedded sources' on purpose (measured in docs/javascript.md): every
source without `sourcesContent` that a frame lands in is parsed, not only those the conversion's
inlining filter flags (`SmCache.names_from_fetched_original`), and the original function wins
wherever the original position lies in one (an anonymous one names nothing: caller naming
applies), the minified scope's name elsewhere. At conversion the filter saves parsing every
source of the bundle; here only the sources frames land in are fetched (source context fetches
them already) and each is parsed once per content, and without `sourcesContent` the minified
scopes also lose their corrections from the original line (`handlers.onClick`, `#private` names).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from symbolicator import keys
from symbolicator.caching import conversion_output, get_or_compute
from symbolicator.errors import CacheFormatError, SymbolicatorError, WorkerCrashed
from symbolicator.sourcemaps.original_names import ORIGINAL_NAMES_VERSION, OriginalNames, build_file
from symbolicator.sourcemaps.scopes import grammar_for

if TYPE_CHECKING:
    from symbolicator.service.js.lookup import JsDeps, JsFile

log = logging.getLogger(__name__)


async def original_names(deps: JsDeps, found: JsFile) -> OriginalNames | None:
    """The converted functions of a found original (None when it cannot be converted: the frame
    keeps its minified-scope name, never an error)."""
    key = keys.js_original_names(ORIGINAL_NAMES_VERSION, found.identity, grammar_for(found.url))
    known = deps.memos.names.get(key)
    if known is not None:
        return known
    derived = deps.caches.derived

    async def convert() -> Path:
        shared = deps.caches.shared
        fetched = await shared.fetch(key, derived) if shared is not None else None
        if fetched is not None:
            return fetched[0]
        data = await found.read()
        source = await asyncio.to_thread(derived.temp_path, ".orig")
        try:
            async with conversion_output(derived, ".orignames") as out:
                await asyncio.to_thread(source.write_bytes, data)
                del data
                await deps.workers.run(build_file, str(source), found.url, str(out),
                                       deps.settings.limits.js_names_max_memory_bytes)
                if shared is not None:
                    await shared.publish(key, out, {}, derived)
        finally:
            source.unlink(missing_ok=True)
        return out

    for attempt in range(2):
        try:
            entry = await get_or_compute(derived, deps.coalescer, key, convert)
            if entry.path is None:
                return None
            opened = await asyncio.to_thread(_open, entry.path)
        except (CacheFormatError, FileNotFoundError):
            if attempt:
                return None
            await asyncio.to_thread(derived.delete, key)
            continue
        except (WorkerCrashed, SymbolicatorError) as exc:
            log.warning("original function names of %s failed: %s", found.url, exc)
            return None
        return deps.memos.names.put(key, opened, opened.size)
    return None


def _open(path: Path) -> OriginalNames:
    return OriginalNames(path.read_bytes())
