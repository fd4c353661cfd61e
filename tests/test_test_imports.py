"""Test modules share helpers through the shared modules only, never by importing each other: a
test module imported by another would run its tests' import side effects, and moving or deleting
it would break an unrelated suite."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).parent

#: The modules test modules may import (module names under ``tests``, dotted, last part).
SHARED = {"support", "harness", "conftest", "seeds", "mews_schema"}


def _imported_test_modules(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.ImportFrom) and node.level > 0:
            names = [f".{node.module or ''}"]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            if (name == "tests" or name.startswith(("tests.", "."))) and name.rpartition(".")[
                2
            ] not in SHARED:
                found.append(name)
    return found


def test_no_test_module_imports_another_test_module() -> None:
    offending = {
        str(path.relative_to(TESTS.parent)): imported
        for path in sorted(TESTS.rglob("*.py"))
        if (imported := _imported_test_modules(path))
    }
    assert not offending, f"move shared helpers into tests/support.py: {offending}"
