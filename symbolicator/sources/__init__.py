"""External native symbol sources: `filesystem`, `http`, `s3` (reference §2.1–§2.4).

`config` parses and validates source configs (server and request), `layouts` maps ids to
paths, `download` fetches one path from one source, `native` searches the sources for a
module and verifies what it finds. No web code and no caching here: the native service
calls `find_debug_file` and caches the result itself.

The search functions are imported lazily, so `symbolicator.config` can validate
`sources` with `parse_config_sources` without importing the HTTP client (which imports
`symbolicator.config` itself).
"""

from typing import TYPE_CHECKING, Any

from symbolicator.sources.config import (
    FilesystemSource,
    HttpSource,
    Layout,
    S3Source,
    SentrySource,
    SkippedSource,
    SourceConfig,
    SourceConfigError,
    SourceFilters,
    SourcePlan,
    fingerprint,
    parse_config_sources,
    parse_source,
    plan_sources,
)
from symbolicator.sources.layouts import ModuleLookup, candidate_paths

if TYPE_CHECKING:
    from symbolicator.sources.native import (
        SourceLookupResult,
        find_debug_file,
        find_source_bundle,
    )

_LAZY = {"SourceLookupResult", "find_debug_file", "find_source_bundle"}

__all__ = [
    "FilesystemSource", "HttpSource", "Layout", "ModuleLookup", "S3Source", "SentrySource", "SkippedSource",
    "SourceConfig", "SourceConfigError", "SourceFilters", "SourceLookupResult", "SourcePlan", "candidate_paths",
    "find_debug_file", "find_source_bundle", "fingerprint", "parse_config_sources", "parse_source", "plan_sources",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from symbolicator.sources import native

        return getattr(native, name)
    raise AttributeError(f"module 'symbolicator.sources' has no attribute {name!r}")
