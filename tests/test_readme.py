"""The README documents every setting."""

from __future__ import annotations

from keyledger.settings import Settings
from tests.support import REPO


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`KEYLEDGER_{name.upper()}`" in readme, name
