"""`rewrite_first_module`: rules that rename the first module's debug file for the lookup only.

Symbolicator's option for minidumps (`/minidump`'s multipart field, `/symbolicate-any`'s
`symbolicate.rewrite_first_module`): Electron and other apps ship one prebuilt executable
renamed per product, so its symbols sit on a source under the original name. The rules are
`[{"from": <regex>, "to": <replacement>}, …]`; they are tried in order on the debug file of
the module loaded lowest, the first that matches replaces its *first* match (Rust's
`Regex::replace`), and only the lookups (CFI and symbols, which use the debug file for the
Breakpad and symstore paths and for path filters) see the new name. The answer keeps the
dump's name.

Patterns are Rust `regex` syntax; Python's `re` reads the common part, and the two spellings
that differ are translated (`(?<name>…)` groups, `\\z`); POSIX classes (`[[:alpha:]]`), which
`re` would read otherwise, are refused. Replacements follow Rust: `$1`, `$name`, `${name}`,
`$$`; a group that did not take part is empty. A pattern `re` cannot compile is a 422.
Python's `re` backtracks where Rust's engine does not, so rules run in the worker pool
(`apply`), under a time budget: a rule that exceeds it ends the job `failed`
(`RewriteRulesTooSlow`) instead of holding a worker.
"""

from __future__ import annotations

import dataclasses
import re
import signal
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, Any, TypeVar

from symbolicator.errors import InvalidShape, RewriteRulesTooSlow

if TYPE_CHECKING:
    from symbolicator.service.native import RawModule

T = TypeVar("T")

MAX_RULES = 64
MAX_PATTERN_CHARS = 4096
MAX_NAME_CHARS = 4096
BUDGET_S = 1.0
_NAMED_GROUP = re.compile(r"\(\?<(?=[A-Za-z_])")
_POSIX_CLASS = re.compile(r"\[:\^?[a-z]+:\]")
_REFERENCE = re.compile(r"\$(?:\$|\{([^}]*)\}|([_0-9A-Za-z]+))")


@dataclass(frozen=True)
class RewriteRules:
    """Validated rules, as (Python pattern, Rust replacement) pairs; empty = no rewriting."""

    rules: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_json(cls, value: Any, where: str = "rewrite_first_module") -> RewriteRules:
        """Raises InvalidShape for a value that is not a list of `{from, to}` string pairs or
        whose pattern does not compile."""
        if value is None:
            return cls()
        if not isinstance(value, list) or len(value) > MAX_RULES:
            raise InvalidShape(f"`{where}` must be a list of at most {MAX_RULES} rules")
        rules = []
        for i, rule in enumerate(value):
            if not isinstance(rule, dict) or not isinstance(rule.get("from"), str) \
                    or not isinstance(rule.get("to"), str):
                raise InvalidShape(f"`{where}[{i}]` must be an object with string `from` and `to`")
            if len(rule["from"]) > MAX_PATTERN_CHARS or len(rule["to"]) > MAX_PATTERN_CHARS:
                raise InvalidShape(f"`{where}[{i}]` is longer than {MAX_PATTERN_CHARS} characters")
            pattern = _NAMED_GROUP.sub("(?P<", rule["from"]).replace(r"\z", r"\Z")
            if _POSIX_CLASS.search(pattern):  # Rust's `[[:alpha:]]` means something else to `re`
                raise InvalidShape(f"`{where}[{i}].from`: POSIX character classes are not supported")
            try:
                re.compile(pattern)
            except (re.error, RecursionError, OverflowError) as exc:
                raise InvalidShape(f"`{where}[{i}].from` is not a regular expression: {exc}") from None
            rules.append((pattern, rule["to"]))
        return cls(tuple(rules))

    def __bool__(self) -> bool:
        return bool(self.rules)


def expand(template: str, match: re.Match[str]) -> str:
    """Rust's `Captures::expand`: `$$`, `${name}`, `$name` (the longest `[_0-9A-Za-z]+`, all
    digits = a group number); unknown or unmatched groups are empty, a bare `$` stays."""

    def group(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name = m.group(1) if m.group(1) is not None else m.group(2)
        try:
            value = match.group(int(name) if name.isdigit() else name)
        except IndexError:  # no such group
            return ""
        return value or ""

    return _REFERENCE.sub(group, template)


def rewrite(rules: RewriteRules, name: str) -> str | None:
    """The first matching rule's rewrite of `name` (only its first match replaced), or None."""
    for pattern, to in rules.rules:
        m = re.search(pattern, name)
        if m is not None:
            return name[:m.start()] + expand(to, m) + name[m.end():]
    return None


class _OverBudget(Exception):
    """The rules ran past their time budget (raised by the interval timer)."""


def _over_budget(_signum: int, _frame: FrameType | None) -> None:
    raise _OverBudget


def renamed(resolve: Callable[[RawModule], Awaitable[T]], index: int,
            debug_file: str) -> Callable[[RawModule], Awaitable[T]]:
    """`resolve` that looks module `index` up under `debug_file`; the module itself is unchanged."""

    async def lookup(module: RawModule) -> T:
        if module.index == index:
            module = dataclasses.replace(module, fields={**module.fields, "debug_file": debug_file})
        return await resolve(module)

    return lookup


def apply(rules: RewriteRules, name: str, budget_s: float = BUDGET_S) -> str | None:
    """Worker-process entry: `rewrite` under an interval timer (`re` checks for signals while it
    matches, so a backtracking pattern is stopped); RewriteRulesTooSlow when the budget runs out."""
    if len(name) > MAX_NAME_CHARS:
        return None
    if threading.current_thread() is not threading.main_thread():
        return rewrite(rules, name)  # the CLI's thread (its own rules, its own machine): no timer there
    previous = signal.signal(signal.SIGALRM, _over_budget)
    signal.setitimer(signal.ITIMER_REAL, budget_s)
    try:
        return rewrite(rules, name)
    except _OverBudget:
        raise RewriteRulesTooSlow(f"`rewrite_first_module` took longer than {budget_s} s on {name!r}") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
