"""The JavaScript engine: source maps in, original positions out. Pure: no HTTP, no asyncio.

- `vlq`: array-at-a-time decoding of `mappings`;
- `sourcemap`: regular and index maps → validated, sorted arrays (`parse`);
- `smcache`: the compact, memory-mapped cache built once per map (`build_from_sources`,
  `SmCache.open(path).lookup(line, column)`);
- `scopes`: original function names from the minified file's syntax tree;
- `context`: source and minified context lines, UTF-16 aware;
- `urls`: source names as trace-mapping resolves them, `sourceMappingURL`, `data:` URLs.
"""

from symbolicator.errors import CacheFormatError
from symbolicator.sourcemaps.smcache import SOURCEMAP_CACHE_VERSION, SmCache, build, build_from_map, build_from_sources
from symbolicator.sourcemaps.sourcemap import NameResolver, OriginalLineResolver, SourceMap, Token, parse

__all__ = [
    "SOURCEMAP_CACHE_VERSION",
    "CacheFormatError",
    "NameResolver",
    "OriginalLineResolver",
    "SmCache",
    "SourceMap",
    "Token",
    "build",
    "build_from_map",
    "build_from_sources",
    "parse",
]
