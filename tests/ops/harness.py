"""What the ops tests share: a real ``keyledger serve`` process, and a Mews caller of a new
property."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from keyledger.callers.service import add_access_token, add_integration
from keyledger.properties.models import Property
from keyledger.properties.service import add_property
from keyledger.store import Store
from tests.support import sealing_for

#: Without Redis, `serve --workers 2` refuses to start with the failed-login brake on.
_BRAKE = (
    "KEYLEDGER_AUTH_FAILURES_PER_CALLER",
    "KEYLEDGER_AUTH_FAILURES_PER_ACCOUNT",
    "KEYLEDGER_AUTH_FAILURES_PER_ADDRESS",
)


def start_server(url: str, port: int, log: Path, **settings: str) -> subprocess.Popen[bytes]:
    """``keyledger serve --workers 2`` on ``url`` (rate limits off, and the failed-login brake
    too unless ``settings`` name a Redis, unless ``settings`` say otherwise), once it answers
    ``/readyz``."""
    brake = {} if "redis_url" in settings else dict.fromkeys(_BRAKE, "0")
    env = {
        **os.environ,
        "KEYLEDGER_DATABASE_URL": url,
        "KEYLEDGER_MEWS_RATE_LIMIT": "0",
        "KEYLEDGER_NEXUDUS_RATE_LIMIT": "0",
        **brake,
        "KEYLEDGER_LOG_LEVEL": "WARNING",
        **{
            f"KEYLEDGER_{name.upper()}": value
            for name, value in {**sealing_for(url), **settings}.items()
        },
    }
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "keyledger", "serve", "--workers", "2", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        assert process.poll() is None, log.read_text()
        time.sleep(0.05)
    raise AssertionError(log.read_text())


def mews_caller(store: Store, name: str) -> tuple[Property, dict[str, str]]:
    """A new property and the Mews credentials (ClientToken, AccessToken, Client) of an
    integration connected to it."""
    prop = add_property(store, name=name)
    integration = add_integration(store, name=name.lower())
    token = add_access_token(
        store, client_token=integration.secret, enterprise_ids=[prop.enterprise_id]
    )
    auth = {"ClientToken": integration.secret, "AccessToken": token.secret, "Client": f"{name} 1.0"}
    return prop, auth
