"""The JVM engine: ProGuard / R8 mapping files, their cache, and retrace (docs/formats.md).

Pure: bytes in, answers out. `mapping` reads a mapping file, `cache` converts it once into
sorted tables looked up by binary search, `remap` remaps frames as ProGuard's retrace does,
`retrace` rewrites a stack trace text as retrace prints it, `stacktrace` reads Java traces.
"""

from __future__ import annotations

from symbolicator.proguard.cache import ProguardCache, build
from symbolicator.proguard.mapping import mapping_uuid, parse


def convert(data: bytes) -> bytes:
    """A mapping file's bytes into cache bytes (raises `MalformedMapping`)."""
    return build(parse(data), mapping_uuid(data))


def load(data: bytes) -> ProguardCache:
    """A mapping file, converted and opened in memory (the CLI's `--mapping FILE`)."""
    return ProguardCache(convert(data))
