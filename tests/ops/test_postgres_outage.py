"""PostgreSQL outage: a throwaway cluster (initdb + pg_ctl, a port of its own) is stopped under
load and started again. Meanwhile every request fails fast in its dialect's shape, with no
internals; afterwards the same server process answers again by itself."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, add_user
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade
from tests.ops.harness import mews_caller, start_server
from tests.support import MEWS_PATH, POSTGRES_URL, free_port, need, record_figures, settings_for

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


class Cluster:
    """A PostgreSQL cluster in a temporary directory, run as the postgres user when we are root."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        need(binaries, "needs PostgreSQL's server binaries (initdb, pg_ctl)")
        self.bin = Path(binaries[-1])
        self.directory = Path(tempfile.mkdtemp(prefix="keyledger-pg-"))
        self.data = self.directory / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.directory, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run(
            "pg_ctl",
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.directory / "log"),
            "-w",
            "start",
        )

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def remove(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    need(POSTGRES_URL, "PostgreSQL tests need KEYLEDGER_TEST_POSTGRES_URL (see .ci/run)")
    made = Cluster()
    made.start()
    yield made
    made.remove()


def test_an_outage_fails_fast_in_each_dialects_shape_and_heals_by_itself(
    cluster: Cluster, tmp_path: Path
) -> None:
    admin = create_engine(
        Settings(database_url=cluster.url).database_url, isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text("CREATE DATABASE keyledger"))
    admin.dispose()
    url = cluster.url.rsplit("/", 1)[0] + "/keyledger"
    store = Store(settings_for(url))
    upgrade(store.engine)
    prop, mews = mews_caller(store, "Outage")
    add_user(
        store,
        email="outage@example.com",
        password="a long enough password",
        business_ids=[prop.business_id],
        roles=ACCESS_TOKEN_ROLES,
    )
    store.dispose()
    grant = {
        "grant_type": "password",
        "username": "outage@example.com",
        "password": "a long enough password",
    }
    get_all = {**mews, "ServiceOrderIds": [str(prop.enterprise_id)], "Limitation": {"Count": 1}}
    bearer = {"Authorization": f"Bearer {mews['AccessToken']}"}
    port = free_port()
    log = tmp_path / "serve.log"
    server = start_server(url, port, log, database_connect_timeout_seconds="2")
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=30) as http:
            assert http.post(f"{MEWS_PATH}/getAll", json=get_all).status_code == 200
            cluster.stop()
            seen, slowest = 0, 0.0
            until = time.monotonic() + 2
            while time.monotonic() < until:
                started = time.monotonic()
                mews_answer = http.post(f"{MEWS_PATH}/getAll", json=get_all)
                v1_answer = http.get("/api/v1/events", headers=bearer)
                token_answer = http.post("/api/token", data=grant)
                took = time.monotonic() - started
                slowest = max(slowest, took)
                assert took < 6, "a request hung during the outage"
                assert mews_answer.status_code == 500
                assert set(mews_answer.json()) == {"Message", "RequestId", "Details"}
                assert mews_answer.json()["Message"].startswith(
                    "The credential store is unavailable"
                )
                assert v1_answer.status_code in (401, 503)  # remembered caller or not
                # /api/token: the same route machinery, in RFC 6749's shape.
                assert token_answer.status_code == 503
                assert token_answer.headers["Retry-After"] == "1"
                assert token_answer.json()["error"] == "temporarily_unavailable"
                assert set(token_answer.json()) == {"error", "error_description"}
                for answer in (mews_answer, v1_answer, token_answer):
                    for internal in ("Traceback", "psycopg", "sqlalchemy", "connection to server"):
                        assert internal not in answer.text
                seen += 1
            assert seen >= 2
            cluster.start()
            restarted = time.monotonic()
            healed = False
            until = time.monotonic() + 20
            while not healed and time.monotonic() < until:
                healed = http.post(f"{MEWS_PATH}/getAll", json=get_all).status_code == 200
                time.sleep(0.2)
            assert healed, "keyledger did not recover after the database came back"
            recovered = time.monotonic() - restarted
            assert http.get("/readyz").json()["status"] == "ready"
            assert server.poll() is None  # the same process, never restarted
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    assert "Traceback" not in log.read_text()
    record_figures(
        "postgres_outage",
        request_pairs_during_outage=seen,
        slowest_failure_seconds=round(slowest, 2),
        answered_again_after_start_seconds=round(recovered, 1),
    )
