"""External native symbol sources: `filesystem`, `http`, `s3` (docs/configuration.md, "Symbol sources").

`config` parses and validates source configs (server and request), `layouts` maps ids to
paths, `download` fetches one path from one source, `native` searches the sources for a
module and verifies what it finds. No web code and no caching here: the native service
calls `sources.search.find_debug_file` and caches the result itself.

This package's top level re-exports only the config and layout halves, which import nothing
of the service: `symbolicator.config` parses `sources` with them at load time, so the search
half (which pulls in the HTTP client, which reads the settings) is imported from
`symbolicator.sources.search` by the code that searches.
"""

from symbolicator.errors import SourceConfigError
from symbolicator.sources.config import (
    FilesystemSource,
    HttpSource,
    Layout,
    S3Source,
    SentrySource,
    SkippedSource,
    SourceConfig,
    SourceFilters,
    SourcePlan,
    fingerprint,
    parse_config_sources,
    parse_source,
    plan_sources,
)
from symbolicator.sources.layouts import ModuleQuery, candidate_paths

__all__ = [
    "FilesystemSource", "HttpSource", "Layout", "ModuleQuery", "S3Source", "SentrySource", "SkippedSource",
    "SourceConfig", "SourceConfigError", "SourceFilters", "SourcePlan", "candidate_paths",
    "fingerprint", "parse_config_sources", "parse_source", "plan_sources",
]
