"""The README documents every setting."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from keyledger.cli.demo import provision_demo
from keyledger.kit.settings import Settings
from tests.support import REPO, DatabaseFactory, deploy, ok, readme_example, sealing_for


def test_every_setting_is_in_the_readme() -> None:
    readme = (REPO / "README.md").read_text()
    for name in Settings.model_fields:
        assert f"`KEYLEDGER_{name.upper()}`" in readme, name


def test_scoped_token_examples_work_against_the_demo(sqlite_databases: DatabaseFactory) -> None:
    """The README's check-only and hotspot-only tokens, made and used as it shows."""
    url = sqlite_databases.new_url()
    deployment = deploy(url)
    try:
        provision_demo(deployment.store)
        script = readme_example("scoped-tokens").replace(
            "http://127.0.0.1:8000", deployment.server.url
        )
        env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "KEYLEDGER_DATABASE_URL": url,
            **{f"KEYLEDGER_{k.upper()}": v for k, v in sealing_for(url).items()},
        }
        done = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        decoder = json.JSONDecoder()
        answers, rest = [], done.stdout.strip()
        while rest:
            answer, end = decoder.raw_decode(rest)
            answers.append(answer)
            rest = rest[end:].strip()
        door, wifi = answers
        assert door["Granted"] is True
        assert door["Reason"] == "Granted"
        assert door["CredentialId"] is None
        assert wifi["Granted"] is True
        assert wifi["SessionId"]
        listed = ok(url, "admin", "list-access-tokens")["AccessTokens"]
        assert [t["Scopes"] for t in listed[-2:]] == [["access:check"], ["hotspot"]]
    finally:
        deployment.close()
