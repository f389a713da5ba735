"""`symbolicator symbolicate TRACE --mapping FILE`: an obfuscated Java stack trace, offline.

The text is rewritten line by line exactly as ProGuard's retrace prints it (`proguard/retrace.py`);
`--json` prints what `POST /symbolicate-jvm` would answer for the trace instead. The mapping is
`--mapping FILE`, or the file with `--mapping-uuid UUID` (Sentry's mapping UUID, or the one a
`proguard/<uuid>.txt` name gives) among the `--symbols` folders. It is converted once into the
ProGuard cache and kept in the offline cache, as the symcaches are.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

from symbolicator.commands.offline_cache import OfflineCache, identity
from symbolicator.errors import FormatError, InvalidId, SymbolicatorError, UnreadableInput, UsageError
from symbolicator.proguard import convert
from symbolicator.proguard.cache import PROGUARD_CACHE_VERSION, ProguardCache
from symbolicator.proguard.mapping import HEAD_BYTES, looks_like_mapping, scan
from symbolicator.proguard.remap import Remapper
from symbolicator.proguard.retrace import retrace_text
from symbolicator.proguard.stacktrace import is_java_frame, parse_java_trace, to_request
from symbolicator.service.jvm import JvmRequest, symbolicate
from symbolicator.types import DebugId

_NAMED = re.compile(r"^([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\.txt$")


def is_java_trace(text: str) -> bool:
    return any(is_java_frame(line) for line in text.splitlines())


def find_mapping(dirs: list[Path], wanted: DebugId) -> Path:
    """The mapping file under `dirs` with that UUID (by content, or by a `<uuid>.txt` name)."""
    for root in dirs:
        for folder, _subdirs, names in os.walk(root):
            for name in sorted(names):
                path = Path(folder, name)
                named = _NAMED.match(name)
                if named is not None and DebugId.parse(named.group(1)) == wanted:
                    return path
                try:
                    with open(path, "rb") as f:
                        if not looks_like_mapping(f.read(HEAD_BYTES)):
                            continue
                        f.seek(0)
                        if DebugId(scan(f).uuid) == wanted:
                            return path
                except (OSError, FormatError):
                    continue
    raise UnreadableInput(f"no ProGuard mapping with UUID {wanted} in {', '.join(map(str, dirs)) or 'no folder'}")


def open_mapping(path: Path, cache: OfflineCache) -> ProguardCache:
    def build() -> bytes:
        return convert(path.read_bytes())

    made = cache.converted("cli-proguard", PROGUARD_CACHE_VERSION, identity([path]), build)
    return ProguardCache.open(made) if isinstance(made, Path) else ProguardCache(bytes(made))


def run(args: argparse.Namespace) -> int:
    if args.mapping and args.mapping_uuid:
        raise UsageError("give either --mapping or --mapping-uuid, not both")
    dirs = [Path(d) for d in args.symbols]
    for d in dirs:
        if not d.is_dir():
            raise SymbolicatorError(f"--symbols {d}: {'not a folder' if d.exists() else 'no such folder'}")
    text = Path(args.file).read_bytes().decode("utf-8", errors="replace")
    cache = OfflineCache.from_args(args)
    try:
        return _run(args, text, dirs, cache)
    finally:
        cache.close()


def _run(args: argparse.Namespace, text: str, dirs: list[Path], cache: OfflineCache) -> int:
    try:
        wanted = None if args.mapping else DebugId.parse(args.mapping_uuid)
    except InvalidId as exc:
        raise UsageError(f"--mapping-uuid: {exc}") from None
    path = Path(args.mapping) if wanted is None else find_mapping(dirs, wanted)
    if not is_java_trace(text):
        raise UnreadableInput(f"{args.file}: read as a Java stack trace (a mapping was given), "
                              "but no line is a frame like `at pkg.Cls.method(File.java:12)`")
    try:
        remapper = Remapper(open_mapping(path, cache))
    except FormatError as exc:
        raise UnreadableInput(f"{path}: {exc}") from None
    if not args.json:
        sys.stdout.write(retrace_text(remapper, text))
        return 0
    body = to_request(parse_java_trace(text))
    payload = symbolicate(JvmRequest.from_json(body), [remapper], [])
    print(json.dumps({"status": "completed", **payload}, indent=2))
    return 0
