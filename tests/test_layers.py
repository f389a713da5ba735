"""Which package may import which: the edges the design forbids stay absent (issue 12 item 6).

`caching/` keeps converted files on local disk; `storage/` holds uploads in a folder or S3.
Neither needs the other: the shared cache is handed its store (`SharedStore`), and both ask
`pids.py` whose temp files are stale.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "symbolicator"


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function or `TYPE_CHECKING` block."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_caching_does_not_import_storage() -> None:
    offenders = {
        f"{path.relative_to(PACKAGE)}: {name}"
        for path in sorted((PACKAGE / "caching").glob("*.py"))
        for name in imported_modules(path)
        if name == "symbolicator.storage" or name.startswith("symbolicator.storage.")
    }
    assert not offenders, sorted(offenders)


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    source = tmp_path / "m.py"
    source.write_text("def f():\n    from symbolicator.storage.local import LocalStorage\n")
    assert "symbolicator.storage.local" in imported_modules(source)
