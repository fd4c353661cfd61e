"""Many writers on SQLite, two workers: no request ever fails with "database is locked"; while
another writer holds SQLite's write turn, both workers keep answering and stop when told."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyrad import packet as rp
from sqlalchemy import select

from keyledger.domain.credentials.vouchers import bulk_create
from keyledger.domain.events.models import Actor
from keyledger.domain.nas.service import add_nas
from keyledger.domain.properties.service import add_property
from keyledger.kit.settings import Settings
from keyledger.radius.packets import dictionary
from keyledger.store import Store
from keyledger.store.engine import TurnTaken
from keyledger.store.schema import events as events_table
from tests.ops.harness import mews_caller, start_server
from tests.radius.support import SECRET, Client, access_request, free_udp_port, reply_of
from tests.support import (
    MEWS_PATH,
    DatabaseFactory,
    flock_waiters,
    free_port,
    record_figures,
    scaled,
    settings_for,
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


# --- SQLite's write turn held elsewhere: the workers keep serving (store/engine.py, WriteTurn) ---


def _login_request(code: str, device: str) -> Any:
    return access_request(user=code, device=device)


def _send_each_from_its_own_socket(
    port: int, requests: list[Any], answers: list[bytes | None], *, timeout: float
) -> list[threading.Thread]:
    """Each request from a socket of its own (new source ports: SO_REUSEPORT spreads them over
    both workers), in a thread that puts the raw answer (None: none) at its index."""
    first = len(answers)
    answers.extend([None] * len(requests))

    def send(index: int, request: Any) -> None:
        client = Client(port)
        try:
            answers[first + index] = client.exchange(request.RequestPacket(), timeout=timeout)
        finally:
            client.close()

    threads = [
        threading.Thread(target=send, args=(n, request)) for n, request in enumerate(requests)
    ]
    for thread in threads:
        thread.start()
    return threads


def _status_server_answered(port: int) -> bool:
    request = rp.AuthPacket(code=rp.StatusServer, secret=SECRET.encode(), dict=dictionary())
    request.add_message_authenticator()
    client = Client(port)
    try:
        return bool(reply_of(request, client.exchange(request.RequestPacket(), 60)).code == 2)
    finally:
        client.close()


def _granted_devices(store: Store) -> list[str]:
    with store.read() as conn:
        rows = conn.execute(
            select(events_table.c.details).where(
                events_table.c.kind == "hotspot.session_started",
                events_table.c.outcome == "Granted",
            )
        )
        return sorted(str(row[0]["DeviceId"]) for row in rows)


def _held_turn(url: str) -> tuple[Store, TurnTaken]:
    """SQLite's write turn, taken by this process (a third writer, with file handles of its
    own), once no worker holds it."""
    store = Store(settings_for(url))
    turn = store.write_turn
    assert turn is not None
    while (taken := turn.take_now()) is None:
        time.sleep(0.01)
    return store, taken


def _until_both_workers_wait(
    url: str, port: int, codes: Iterator[str], answers: list[bytes | None], *, timeout: float
) -> list[threading.Thread]:
    """Logins, four at a time from new sockets, until a group of one worker waits for the turn
    (its helper thread blocked on the turn's file) and one of the other waits behind it (on
    the gate)."""
    database = url.removeprefix("sqlite:///")
    threads: list[threading.Thread] = []
    while not (
        flock_waiters(f"{database}-keyledger-lock") and flock_waiters(f"{database}-keyledger-gate")
    ):
        batch = [_login_request(next(codes), f"waiting-{len(answers) + n}") for n in range(4)]
        threads += _send_each_from_its_own_socket(port, batch, answers, timeout=timeout)
        time.sleep(0.2)  # the requests reach their worker (only pacing: nothing is timed)
    return threads


def _radius_server(
    url: str, store: Store, tmp_path: Path, *, vouchers: int
) -> tuple[Iterator[str], int, int, subprocess.Popen[bytes]]:
    """``keyledger serve --workers 2`` on ``url`` with RADIUS on, a NAS at 127.0.0.1 and
    ``vouchers`` vouchers (UserLimit 10) of a property of its own: their codes, the auth port,
    the HTTP port and the server. Nobody goes ahead without the write turn (``busy_timeout`` of
    ten minutes)."""
    prop = add_property(store, name="Turn")
    add_nas(store, business_id=prop.business_id, address="127.0.0.1", secret=SECRET)
    made = bulk_create(
        store, target=prop, actor=Actor.system(), count=vouchers, minutes=600, user_limit=10
    )
    auth_port, acct_port, port = free_udp_port(), free_udp_port(), free_port()
    server = start_server(
        url,
        port,
        tmp_path / "serve.log",
        radius_auth_port=str(auth_port),
        radius_acct_port=str(acct_port),
        sqlite_busy_timeout_ms="600000",
    )
    return iter(voucher.value for voucher in made), auth_port, port, server


def test_both_workers_keep_answering_while_another_writer_holds_the_write_turn(
    sqlite_databases: DatabaseFactory, tmp_path: Path
) -> None:
    """This process holds SQLite's write turn, as a worker committing a long group would. Logins
    reach both workers and wait for the turn, and meanwhile every Status-Server and /healthz is
    answered: neither worker's event loop waits with its group. Once the turn is let go, every
    waiting login is answered and written once. Then logins run on both workers at once: every
    acknowledged one is in the store exactly once."""
    url = sqlite_databases.new_url()
    store = Store(settings_for(url))
    codes, auth_port, port, server = _radius_server(url, store, tmp_path, vouchers=200)
    holder: Store | None = None
    try:
        assert all(_status_server_answered(auth_port) for _ in range(8))  # both workers up
        holder, held = _held_turn(url)
        answers: list[bytes | None] = []
        threads = _until_both_workers_wait(url, auth_port, codes, answers, timeout=120)
        assert all(_status_server_answered(auth_port) for _ in range(16))
        for _ in range(8):
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as http:
                assert http.get("/healthz").status_code == 200
        answered_while_held = [answer is not None for answer in answers]
        assert _granted_devices(store) == []
        held.release()
        for thread in threads:
            thread.join()
        assert answered_while_held == [False] * len(answers)
        assert [answer is not None and answer[0] == 2 for answer in answers] == [True] * len(
            answers
        )
        waited = sorted(f"waiting-{n}" for n in range(len(answers)))
        assert _granted_devices(store) == waited

        parallel: list[bytes | None] = []
        requests = [_login_request(next(codes), f"parallel-{n:02d}") for n in range(64)]
        for thread in _send_each_from_its_own_socket(auth_port, requests, parallel, timeout=60):
            thread.join()
        accepted = sorted(
            f"parallel-{n:02d}" for n, answer in enumerate(parallel) if answer and answer[0] == 2
        )
        assert len(accepted) == 64
        assert _granted_devices(store) == sorted([*waited, *accepted])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        if holder is not None:
            holder.dispose()
        store.dispose()


def test_a_server_whose_groups_wait_for_the_write_turn_still_stops(
    sqlite_databases: DatabaseFactory, tmp_path: Path
) -> None:
    """SIGTERM while both workers' groups wait for a turn this process holds: the server stops
    (a helper thread blocked in ``flock`` holds nothing up), the waiting logins are never
    answered and nothing of them is written."""
    url = sqlite_databases.new_url()
    store = Store(settings_for(url))
    codes, auth_port, _, server = _radius_server(url, store, tmp_path, vouchers=100)
    holder: Store | None = None
    try:
        assert all(_status_server_answered(auth_port) for _ in range(8))
        holder, held = _held_turn(url)
        answers: list[bytes | None] = []
        # The clients give up after 10 s (the server stops first: a wait that cannot be answered).
        threads = _until_both_workers_wait(url, auth_port, codes, answers, timeout=10)
        os.killpg(server.pid, signal.SIGTERM)
        stopped = server.wait(timeout=120)
        held.release()
        for thread in threads:
            thread.join()
        assert stopped == 0
        assert answers == [None] * len(answers)
        assert _granted_devices(store) == []
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait(timeout=30)
        if holder is not None:
            holder.dispose()
        store.dispose()
