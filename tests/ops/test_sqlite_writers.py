"""Many writers on SQLite, two workers: no request ever fails with "database is locked"."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from keyledger.kit.settings import Settings
from keyledger.store import Store
from tests.ops.harness import mews_caller, start_server
from tests.support import (
    MEWS_PATH,
    DatabaseFactory,
    free_port,
    record_figures,
    scaled,
    token_parameters,
)

pytestmark = pytest.mark.slow


ROUNDS = scaled(15)


def test_sixteen_writers_on_two_workers_never_see_a_locked_database(
    sqlite_databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = sqlite_databases.new_url()
    store = Store(Settings(database_url=url))
    _, auth = mews_caller(store, "Writers")
    store.dispose()
    port = free_port()
    log = tmp_path / "serve.log"
    server = start_server(url, port, log)
    statuses: list[int] = []
    bodies: list[str] = []

    def write(client: int) -> None:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            for n in range(ROUNDS):
                parameters = [
                    token_parameters(value=f"W{client}-{n}-{i}#", service_order=uuid.uuid4())
                    for i in range(5)
                ]
                added = http.post(
                    f"{MEWS_PATH}/add", json={**auth, "ResourceAccessTokenParameters": parameters}
                )
                statuses.append(added.status_code)
                bodies.append(added.text)
                if added.status_code == 200:
                    first = added.json()["ResourceAccessTokens"][0]["Id"]
                    deleted = http.post(f"{MEWS_PATH}/delete", json={**auth, "Ids": [first]})
                    statuses.append(deleted.status_code)
                    bodies.append(deleted.text)

    try:
        writers = [threading.Thread(target=write, args=(n,)) for n in range(16)]
        started = time.monotonic()
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)
        assert time.monotonic() - started < 120
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    elapsed = time.monotonic() - started
    assert len(statuses) == 16 * ROUNDS * 2
    assert set(statuses) == {200}, sorted(set(statuses))
    assert not any("locked" in body.lower() for body in bodies)
    assert "database is locked" not in log.read_text()
    record_figures(
        "sqlite_writers",
        writers=16,
        requests=len(statuses),
        all_200=True,
        seconds=round(elapsed, 1),
    )
