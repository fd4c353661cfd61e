"""``keyledger serve`` as a real process: demo, restarts, workers, shared limits, logs, metrics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from keyledger.cli.demo import ACCESS_TOKEN, CLIENT_TOKEN
from tests.support import MEWS_PATH, REDIS_URL, free_port, need

pytestmark = pytest.mark.slow

DEMO_CREDENTIALS = {"ClientToken": CLIENT_TOKEN, "AccessToken": ACCESS_TOKEN, "Client": "t 1.0"}


@contextmanager
def serving(
    workdir: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = workdir / f"serve-{port}.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "keyledger", "serve", "--port", str(port), *args],
            cwd=workdir,
            env={**_without_store_settings(os.environ), **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        yield url, log
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)


def _without_store_settings(environ: os._Environ[str]) -> dict[str, str]:
    """The default store: keyledger.db in the working directory."""
    return {k: v for k, v in environ.items() if k != "KEYLEDGER_DATABASE_URL"}


def _get_all(url: str, ids: list[str]) -> httpx.Response:
    """A new connection each time, so that every worker takes requests."""
    with httpx.Client() as client:
        return client.post(
            f"{url}{MEWS_PATH}/getAll",
            json={**DEMO_CREDENTIALS, "ResourceAccessTokenIds": ids, "Limitation": {"Count": 10}},
        )


def test_demo_on_the_default_sqlite_file_survives_restarts(tmp_path: Path) -> None:
    token = "35d4b117-4e60-44a3-9580-c582117eff98"
    with serving(tmp_path, "--demo") as (url, log):
        assert httpx.get(f"{url}/readyz").json() == {"status": "ready", "reason": None}
        listed = _get_all(url, [token]).json()["ResourceAccessTokens"]
        assert listed[0]["Value"] == "4711#"
        deleted = httpx.post(f"{url}{MEWS_PATH}/delete", json={**DEMO_CREDENTIALS, "Ids": [token]})
        assert deleted.status_code == 200
    assert (tmp_path / "keyledger.db").exists()
    with serving(tmp_path, "--demo") as (url, log):
        again = _get_all(url, [token]).json()["ResourceAccessTokens"]
        assert again[0]["IsActive"] is False, "demo data came back after a restart"
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    requests = [line for line in lines if line.get("event") == "request"]
    assert requests, "no request log lines"
    assert all(uuid.UUID(line["request_id"]) for line in requests)
    text = log.read_text()
    assert CLIENT_TOKEN not in text
    assert ACCESS_TOKEN not in text
    assert "4711#" not in text


def test_without_demo_no_credential_exists(tmp_path: Path) -> None:
    with serving(tmp_path) as (url, _):
        response = _get_all(url, [str(uuid.uuid4())])
        assert response.status_code == 401


def test_several_workers_without_redis_refuse_to_start(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "keyledger", "serve", "--workers", "2"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={k: v for k, v in os.environ.items() if k != "KEYLEDGER_REDIS_URL"},
        check=False,
    )
    assert done.returncode == 2
    assert "--workers > 1 needs KEYLEDGER_REDIS_URL" in done.stderr
    assert not (tmp_path / "keyledger.db").exists()


def test_two_workers_share_one_rate_limit_and_one_metrics_view(tmp_path: Path) -> None:
    need(REDIS_URL, "Redis tests need KEYLEDGER_TEST_REDIS_URL (see .ci/run)")
    assert REDIS_URL is not None
    env = {
        "KEYLEDGER_REDIS_URL": REDIS_URL,
        "KEYLEDGER_REDIS_KEY_PREFIX": f"keyledger-test-{uuid.uuid4().hex}",
        "KEYLEDGER_MEWS_RATE_LIMIT": "12",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
    }
    with serving(tmp_path, "--demo", "--workers", "2", env=env) as (url, _):
        statuses = []
        for _ in range(20):
            statuses.append(_get_all(url, [str(uuid.uuid4())]).status_code)
        assert statuses.count(200) == 12, statuses
        assert statuses.count(429) == 8, statuses
        metrics = httpx.get(f"{url}/metrics").text
        pattern = (
            r'keyledger_requests_total\{dialect="mews",'
            r'operation="mews_resourceAccessTokens_getAll",status="(\d+)"\} ([\d.]+)'
        )
        totals = {status: float(value) for status, value in re.findall(pattern, metrics)}
        assert totals == {"200": 12.0, "429": 8.0}
