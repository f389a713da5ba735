"""Reading a Java stack trace as text into exceptions and frames (the `/symbolicate-jvm` shape).

`Exception in thread "main" pkg.Cls: message` and `Caused by: pkg.Cls: message` (and
`Suppressed:`) start an exception; each `at pkg.Cls.method(File.java:12)` line below belongs to
it, innermost first as Java prints them. `... N more` lines and JDK frames with a module prefix
(`java.base/…`) are kept as frames of their class. A line that is none of these is ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FRAME = re.compile(r"^\s*at\s+(?:[\w.$-]+(?:@[^/\s]*)?/)*([^\s()/]+)\.([^\s().]+)\(([^():]*)(?::(\d+))?\)")
_HEADER = re.compile(r"^(?:Exception in thread \"[^\"]*\" |\s*Caused by: |\s*Suppressed: )?"
                     r"((?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*)(?::|\s*$)")


@dataclass(frozen=True)
class JavaFrame:
    """`line` 1-based, None when the trace gives none."""

    class_name: str
    method: str
    file: str | None
    line: int | None


@dataclass
class JavaException:
    class_name: str
    frames: list[JavaFrame] = field(default_factory=list)


def is_java_frame(line: str) -> bool:
    return _FRAME.match(line) is not None


def parse_java_trace(text: str) -> list[JavaException]:
    out: list[JavaException] = []
    for line in text.splitlines():
        frame = _FRAME.match(line)
        if frame is not None:
            if not out:
                out.append(JavaException(""))
            number = frame.group(4)
            out[-1].frames.append(JavaFrame(frame.group(1), frame.group(2), frame.group(3) or None,
                                            int(number) if number is not None and int(number) < 2**32 else None))
            continue
        header = _HEADER.match(line)
        if header is not None:
            out.append(JavaException(header.group(1)))
    return out


def to_request(exceptions: list[JavaException]) -> dict[str, object]:
    """A `/symbolicate-jvm` body (modules left out): frames outermost first, as Sentry sends them."""
    return {
        "exceptions": [{"type": e.class_name.rpartition(".")[2], "module": e.class_name.rpartition(".")[0]}
                       for e in exceptions if e.class_name],
        "stacktraces": [{"frames": [
            {"function": f.method, "module": f.class_name, "index": i,
             **({"filename": f.file} if f.file else {}), **({"lineno": f.line} if f.line is not None else {})}
            for i, f in enumerate(reversed(e.frames))]} for e in exceptions],
    }
