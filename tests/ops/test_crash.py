"""Crash: while four clients stream Mews add batches, the server is killed with SIGKILL and started
again. Every token whose batch was answered 200 is there, no batch is half-written, and the store
opens without repair (SQLite: integrity_check ok)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from keyledger.store import Store
from keyledger.store.schema import credentials
from tests.ops.harness import mews_caller, start_server
from tests.support import (
    MEWS_PATH,
    DatabaseFactory,
    free_port,
    record_figures,
    scaled,
    settings_for,
    token_parameters,
)

pytestmark = pytest.mark.slow

BATCH = 40
CYCLES = scaled(1)


def _stream(
    base: str, auth: dict[str, str], client: int, stop: threading.Event, log: list[Any]
) -> None:
    """Send batches until told to stop; note each batch's prefix and whether it was answered."""
    with httpx.Client(base_url=base, timeout=10) as http:
        n = 0
        while not stop.is_set():
            prefix = f"C{client}B{n}-"
            n += 1
            body = {
                **auth,
                "ResourceAccessTokenParameters": [
                    token_parameters(value=f"{prefix}{i}#", service_order=uuid.uuid4())
                    for i in range(BATCH)
                ],
            }
            try:
                answer = http.post(f"{MEWS_PATH}/add", json=body)
            except httpx.TransportError:
                log.append((prefix, None))
                time.sleep(0.05)
                continue
            ids = (
                [t["Id"] for t in answer.json()["ResourceAccessTokens"]]
                if answer.status_code == 200
                else None
            )
            log.append((prefix, ids))


def test_sigkill_during_add_batches_loses_nothing_acknowledged(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    url = databases.new_url()
    store = Store(settings_for(url))
    prop, auth = mews_caller(store, "Crash")
    port = free_port()
    log_file = tmp_path / "serve.log"
    server = start_server(url, port, log_file)
    stop = threading.Event()
    sent: list[Any] = []
    clients = [
        threading.Thread(
            target=_stream, args=(f"http://127.0.0.1:{port}", auth, n, stop, sent), daemon=True
        )
        for n in range(4)
    ]
    for client in clients:
        client.start()
    try:
        for cycle in range(CYCLES):
            # Each cycle: 8 more acknowledged batches, then SIGKILL and a restart.
            deadline = time.monotonic() + 30
            while sum(1 for _, ids in sent if ids) < 8 * (cycle + 1):
                assert time.monotonic() < deadline, "the restarted server accepts no batch"
                time.sleep(0.05)
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=10)
            time.sleep(0.5)  # the clients see the connection fail
            server = start_server(url, port, log_file)
    finally:
        stop.set()
        for client in clients:
            client.join(timeout=30)
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    acknowledged = {prefix: ids for prefix, ids in sent if ids}
    assert len(acknowledged) >= 8 * CYCLES
    assert any(ids is None for _, ids in sent), "no batch was in flight when the server died"
    with store.read() as conn:
        if store.dialect == "sqlite":
            assert conn.execute(text("PRAGMA integrity_check")).scalar_one() == "ok"
        rows = [
            (uid, value if sealed is None else store.sealer.open(uid, sealed))
            for uid, value, sealed in conn.execute(
                select(credentials.c.uid, credentials.c.value, credentials.c.value_sealed).where(
                    credentials.c.property_id == prop.id
                )
            )
        ]
    store.dispose()
    stored_ids = {str(uid) for uid, _ in rows}
    for prefix, ids in acknowledged.items():
        assert set(ids) <= stored_ids, f"batch {prefix} was answered 200 and is gone"
    per_batch: dict[str, int] = {}
    for _, value in rows:
        prefix = value.split("-")[0] + "-"
        per_batch[prefix] = per_batch.get(prefix, 0) + 1
    assert all(count == BATCH for count in per_batch.values()), per_batch
    assert set(acknowledged) <= set(per_batch)
    record_figures(
        f"crash_{store.dialect}",
        kills=CYCLES,
        batches_acknowledged=len(acknowledged),
        tokens_stored=len(rows),
        requests_failed_while_down=sum(1 for _, ids in sent if ids is None),
        half_written_batches=0,
    )
