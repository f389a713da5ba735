"""Source context for JVM frames, from the JVM source bundles a `/symbolicate-jvm` request names.

`sentry-cli debug-files bundle-jvm --debug-id UUID src/` packs the app's sources into a source
bundle (`SYSB`, each file under the URL `~/pkg/path/Name.jvm`) and `debug-files upload --type
jvm` uploads it; the request names it as a module `{"uuid": …, "type": "source"}`. With
`options.apply_source_context`, every frame with a line gets five lines either side from the
first bundle holding its file, which is named as Symbolicator names it: `~/` + the frame's
package as a path + its `abs_path` up to the last dot (when that has a dot and no `$`), else
`~/` + its class up to the first `$`, then the `.jvm` every bundled file gets.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from symbolicator.artifacts.bundle_archive import open_zip, read_bundle, read_capped
from symbolicator.errors import FormatError
from symbolicator.sourcemaps.context import context_from_lines

MAX_SOURCE_BYTES = 16 << 20


def source_file_name(frame: dict[str, Any]) -> str:
    """The bundle URL of a frame's source file (Symbolicator's `build_source_file_name`)."""
    module: str = frame["module"]
    abs_path = frame.get("abs_path")
    name = "~/"
    if isinstance(abs_path, str) and "." in abs_path and "$" not in abs_path:
        if "." in module:
            name += module.rsplit(".", 1)[0].replace(".", "/") + "/"
        name += abs_path.rsplit(".", 1)[0]
    else:
        name += module.split("$", 1)[0].replace(".", "/")
    return name + ".jvm"


class JvmSources:
    """The opened bundles of one request; `text(url)` reads a file once. Use in one thread."""

    def __init__(self, paths: list[Path], max_entries: int, max_uncompressed: int) -> None:
        self._stack = ExitStack()
        self._by_url: dict[str, tuple[zipfile.ZipFile, str]] = {}
        self._texts: dict[str, list[str] | None] = {}
        for path in paths:
            try:
                bundle = read_bundle(path, max_entries, max_uncompressed)
                zf = self._stack.enter_context(open_zip(path, max_entries, max_uncompressed))
            except (FormatError, OSError):
                continue  # a broken (or meanwhile evicted) bundle gives no context, as in Symbolicator
            for f in bundle.files:
                if f.type == "source" and f.url is not None:
                    self._by_url.setdefault(f.url, (zf, f.path))

    def lines(self, url: str) -> list[str] | None:
        if url not in self._texts:
            found = self._by_url.get(url)
            text = None
            if found is not None:
                try:
                    text = read_capped(found[0], found[1], MAX_SOURCE_BYTES).decode("utf-8", errors="replace")
                except FormatError:
                    text = None
            self._texts[url] = _lines(text) if text is not None else None
        return self._texts[url]

    def close(self) -> None:
        self._stack.close()


def _lines(text: str) -> list[str]:
    """Lines as Rust's `str::lines` cuts them (Symbolicator's context): at `\n`, one `\r` before it dropped."""
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def apply_context(frames: list[dict[str, Any]], lines_of: Callable[[str], list[str] | None]) -> None:
    """Set `pre_context`, `context_line`, `post_context` on frames whose source is bundled."""
    for frame in frames:
        lineno = frame.get("lineno")
        if not isinstance(lineno, int) or lineno <= 0:
            continue
        lines = lines_of(source_file_name(frame))
        context = context_from_lines(lines, lineno) if lines is not None else None
        if context is not None:
            frame["pre_context"] = context.pre_context
            frame["context_line"] = context.context_line
            frame["post_context"] = context.post_context
