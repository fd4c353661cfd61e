"""Two ``keyledger serve`` processes (two workers each) on one store and one Redis: a cursor from
one pages on the other, and concurrent updates of the same tokens through both leave one
consistent state."""

from __future__ import annotations

import os
import signal
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyledger.store import Store
from tests.ops.harness import mews_caller, start_server
from tests.support import (
    MEWS_PATH,
    REDIS_URL,
    DatabaseFactory,
    free_port,
    need,
    record_figures,
    scaled,
    settings_for,
    token_parameters,
)

pytestmark = [pytest.mark.slow, pytest.mark.redis]
ROUNDS = scaled(10)


def test_two_processes_share_cursors_and_stay_consistent_under_concurrent_updates(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    need(REDIS_URL, "Redis tests need KEYLEDGER_TEST_REDIS_URL (see .ci/run)")
    assert REDIS_URL is not None
    url = databases.new_url()
    store = Store(settings_for(url))
    _, auth = mews_caller(store, "Instances")
    store.dispose()
    shared = {"redis_url": REDIS_URL, "redis_key_prefix": f"keyledger-test-{uuid.uuid4().hex}"}
    ports = [free_port(), free_port()]
    servers = [start_server(url, port, tmp_path / f"{port}.log", **shared) for port in ports]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        first, second = (httpx.Client(base_url=base, timeout=30) for base in bases)
        added = first.post(
            f"{MEWS_PATH}/add",
            json={**auth, "ResourceAccessTokenParameters": [token_parameters() for _ in range(30)]},
        )
        assert added.status_code == 200
        ids = {t["Id"] for t in added.json()["ResourceAccessTokens"]}
        seen: list[str] = []
        cursor = None
        for http in (first, second, first, second):  # alternate servers page by page
            page = http.post(
                f"{MEWS_PATH}/getAll",
                json={
                    **auth,
                    "ResourceAccessTokenIds": sorted(ids),
                    "Limitation": {"Count": 10, "Cursor": cursor},
                },
            ).json()
            seen += [t["Id"] for t in page["ResourceAccessTokens"]]
            cursor = page["Cursor"]
        assert sorted(seen) == sorted(ids)  # every token once, across both servers
        targets = sorted(ids)[:8]
        acknowledged: dict[str, set[str]] = {target: set() for target in targets}
        lock = threading.Lock()

        def update(http: httpx.Client, writer: int) -> None:
            for round_ in range(ROUNDS):
                values = {t: f"{writer}-{round_}-{n:02d}#" for n, t in enumerate(targets)}
                answer = http.post(
                    f"{MEWS_PATH}/update",
                    json={
                        **auth,
                        "ResourceAccessTokenUpdates": [
                            {"ResourceAccessTokenId": t, "Value": {"Value": v}}
                            for t, v in values.items()
                        ],
                    },
                )
                assert answer.status_code == 200, answer.text
                with lock:
                    for t, v in values.items():
                        acknowledged[t].add(v)

        writers = [
            threading.Thread(target=update, args=(http, n))
            for n, http in enumerate((first, second, first, second))
        ]
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(timeout=120)

        def state(http: httpx.Client) -> dict[str, Any]:
            listed = http.post(
                f"{MEWS_PATH}/getAll",
                json={**auth, "ResourceAccessTokenIds": targets, "Limitation": {"Count": 100}},
            ).json()["ResourceAccessTokens"]
            return {t["Id"]: (t["Value"], t["UpdatedUtc"]) for t in listed}

        seen_first, seen_second = state(first), state(second)
        assert seen_first == seen_second
        for target, (value, _) in seen_first.items():
            assert value in acknowledged[target]
        # Each update batch is one transaction: all eight tokens carry the same writer and round.
        assert len({value.rsplit("-", 1)[0] for value, _ in seen_first.values()}) == 1
        record_figures(
            f"instances_{store.dialect}",
            servers=2,
            cursor_pages=4,
            update_batches_acknowledged=4 * ROUNDS,
            tokens_contended=len(targets),
        )
        first.close()
        second.close()
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=30)
