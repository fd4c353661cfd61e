"""The README's RADIUS example, verbatim but for the ports, against `serve --demo` with 2 workers
and Debian's radclient."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from keyledger.cli.demo import provision_demo
from keyledger.store import Store
from tests.ops.harness import start_server
from tests.radius.support import free_udp_port, radclient
from tests.support import (
    DatabaseFactory,
    free_port,
    readme_example,
    sealing_for,
    settings_for,
)

pytestmark = pytest.mark.slow


def test_the_readme_radius_example_works_against_the_demo(
    sqlite_databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = sqlite_databases.new_url()
    store = Store(settings_for(url))
    provision_demo(store)
    store.dispose()
    port, auth, acct = free_port(), free_udp_port(), free_udp_port()
    server = start_server(
        url, port, tmp_path / "serve.log", radius_auth_port=str(auth), radius_acct_port=str(acct)
    )
    try:
        for _ in range(100):  # until both workers' listeners are up
            probe = radclient(
                auth, "auth", 'User-Name = "x", User-Password = "x", Message-Authenticator = 0x00'
            )
            if probe.kind:
                break
        script = (
            readme_example("radius")
            .replace("127.0.0.1 auth", f"127.0.0.1:{auth} auth")
            .replace("127.0.0.1 acct", f"127.0.0.1:{acct} acct")
            .replace("http://127.0.0.1:8000", f"http://127.0.0.1:{port}")
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
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert len(re.findall(r"^Received Access-Accept", out, re.MULTILINE)) == 1  # CHAP's is captured
    assert re.search(r"Session-Timeout = 36000", out)
    assert len(re.findall(r"^Received Accounting-Response", out, re.MULTILINE)) == 3
    assert 'Reply-Message = "UnknownCredential"' in out
    voucher = json.loads(out[out.rindex("\n{") :])
    assert voucher["MinutesLeft"] == 598
    assert voucher["LastAccess"] is not None
