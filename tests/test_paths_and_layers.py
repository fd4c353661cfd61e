"""What import-linter cannot see: module paths named in prose, and modules loaded by name."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support import REPO

#: Where a path like ``credentials/vouchers.py`` is read from, in this order.
_BASES = [
    REPO,
    REPO / "src",
    REPO / "src/keyledger",
    REPO / "src/keyledger/domain",
    REPO / "src/keyledger/web",
    REPO / "src/keyledger/store/migrations",
    REPO / "tests",
]
_PATH = re.compile(r"(?<![\w./-])((?:[A-Za-z_][\w.-]*/)+[\w-]+\.py)\b")


def _prose_and_code() -> list[Path]:
    """Every file a reader reads paths in (this one aside: it names a missing one on purpose)."""
    files = [
        *sorted(REPO.glob("docs/*.md")),
        REPO / "README.md",
        REPO / "benchmarks/README.md",
        *sorted(REPO.glob("src/**/*.py")),
        *sorted(REPO.glob("tests/**/*.py")),
        *sorted(REPO.glob("benchmarks/*.py")),
    ]
    return [file for file in files if file.resolve() != Path(__file__).resolve()]


def test_every_module_path_named_in_docs_and_code_exists() -> None:
    """A module moved or renamed leaves no reader looking for it under its old name."""
    missing = []
    for file in _prose_and_code():
        for number, line in enumerate(file.read_text().splitlines(), 1):
            for found in _PATH.finditer(line):
                path = found.group(1)
                if not any((base / path).exists() for base in _BASES):
                    missing.append(f"{file.relative_to(REPO)}:{number}: {path}")
    assert missing == []


def test_the_path_check_sees_a_missing_module() -> None:
    line = "the rule lives in credentials/nowhere.py, beside credentials/vouchers.py"
    named = [found.group(1) for found in _PATH.finditer(line)]
    assert named == ["credentials/nowhere.py", "credentials/vouchers.py"]
    assert [p for p in named if not any((b / p).exists() for b in _BASES)] == [
        "credentials/nowhere.py"
    ]


def test_migrations_load_no_live_module_by_name() -> None:
    """The migrations-self-contained contract sees imports, not ``import_module("…")``: a
    migration may load an older migration by name, nothing else of keyledger."""
    loaded = re.compile(r"""(?:import_module|__import__)\(\s*["']([\w.]+)["']""")
    outside = []
    for file in sorted((REPO / "src/keyledger/store/migrations/versions").glob("*.py")):
        for name in loaded.findall(file.read_text()):
            if name.startswith("keyledger") and not name.startswith(
                "keyledger.store.migrations.versions."
            ):
                outside.append(f"{file.name}: {name}")
    assert outside == []
