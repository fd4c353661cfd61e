"""What the ops tests share: a real ``keyledger serve`` process, and a Mews caller of a new
property."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

from keyledger.domain.callers.integrations import add_access_token, add_integration
from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, add_user
from keyledger.domain.properties.models import Property
from keyledger.domain.properties.service import add_property
from keyledger.store import Store
from tests.support import REDIS_URL, free_port, sealing_for, settings_for

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


def braked_server(
    url: str, log: Path, *, emails: Sequence[str], password: str, **limits: str
) -> tuple[str, subprocess.Popen[bytes]]:
    """A new property with Nexudus users ``emails`` (``password``, every access-token role), and
    ``keyledger serve --workers 2`` on it with the failed-login brake shared through Redis and set
    by ``limits`` (``auth_failures_per_caller`` …), trusting ``X-Forwarded-For`` from loopback so
    that a test can speak from many addresses. Its base URL and process."""
    assert REDIS_URL is not None
    store = Store(settings_for(url))
    prop, _ = mews_caller(store, f"Braked{uuid.uuid4().hex[:6]}")
    for email in emails:
        add_user(
            store,
            email=email,
            password=password,
            business_ids=[prop.business_id],
            roles=ACCESS_TOKEN_ROLES,
        )
    store.dispose()
    port = free_port()
    server = start_server(
        url,
        port,
        log,
        redis_url=REDIS_URL,
        redis_key_prefix=f"keyledger-test-{uuid.uuid4().hex}",
        trusted_proxies="127.0.0.1/32",
        redis_timeout_ms="5000",  # a slow reply on this loaded machine is not an outage
        **limits,
    )
    return f"http://127.0.0.1:{port}", server


@contextmanager
def running_server(url: str, log: Path, **settings: str) -> Iterator[str]:
    """``start_server`` on a free port for the block; its base URL. Stopped (with its workers)
    when the block ends."""
    port = free_port()
    process = start_server(url, port, log, **settings)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
