"""Disconnect-Request to a NAS on IPv6 (docs/radius.md, "Disconnect"): `serve --workers 2` with
its RADIUS listeners on ::1, a NAS at ::1 that logs a device in and accounts for it, and a NAS
stand-in on ::1 that must receive the signed Disconnect-Request when the voucher is deleted; on
each database. Skipped where the machine has no IPv6 loopback."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from pyrad import packet as rp
from sqlalchemy import select

from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, add_user
from keyledger.domain.nas.service import add_nas
from keyledger.domain.properties.service import add_property
from keyledger.radius.packets import dictionary
from keyledger.store import Store
from keyledger.store.schema import events
from tests.ops.harness import start_server
from tests.radius.support import (
    SECRET,
    Client,
    NasStandIn,
    access_request,
    free_udp_port,
    ipv6_loopback,
    reply_of,
)
from tests.support import DatabaseFactory, NexudusTenant, free_port, settings_for

pytestmark = pytest.mark.slow


def _disconnects(store: Store) -> list[tuple[str | None, dict[str, Any]]]:
    with store.read() as conn:
        rows = conn.execute(
            select(events.c.outcome, events.c.details)
            .where(events.c.kind == "hotspot.disconnect")
            .order_by(events.c.id)
        )
        return [(row[0], row[1]) for row in rows]


def _accounting_start(client: Client, *, code: str, device: str, session: bytes) -> None:
    request = rp.AcctPacket(code=rp.AccountingRequest, secret=SECRET.encode(), dict=dictionary())
    request["Acct-Status-Type"] = "Start"
    request["Acct-Session-Id"] = "acct-v6"
    request["Acct-Session-Time"] = 0
    request["Class"] = session
    request["User-Name"] = code
    request["Calling-Station-Id"] = device
    raw = client.exchange(bytes(request.RequestPacket()))
    assert raw is not None, "no Accounting-Response"
    answer = rp.AcctPacket(packet=raw, secret=SECRET.encode(), dict=dictionary())
    assert answer.code == rp.AccountingResponse
    assert request.VerifyReply(answer, raw)


def test_a_nas_on_ipv6_is_sent_its_disconnect_request(
    databases: DatabaseFactory, tmp_path: Path
) -> None:
    if not ipv6_loopback():  # a property of the machine, not a service CI could provide
        pytest.skip("this machine has no IPv6 loopback (::1)")
    url = databases.new_url()
    store = Store(settings_for(url))
    port = free_port()
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    nas = NasStandIn(host="::1")
    prop = add_property(store, name=f"IPv6 {uuid.uuid4().hex[:6]}")
    email = f"v6-{uuid.uuid4().hex[:8]}@example.com"
    add_user(
        store,
        email=email,
        password="a long password",
        business_ids=[prop.business_id],
        roles=ACCESS_TOKEN_ROLES,
    )
    space = NexudusTenant(http, email, "a long password", prop.business_id, prop.enterprise_id)
    add_nas(store, business_id=prop.business_id, address="::1", secret=SECRET, coa_port=nas.port)
    auth_port, acct_port = free_udp_port(), free_udp_port()
    server = start_server(
        url,
        port,
        tmp_path / "serve.log",
        radius_host="::1",
        radius_auth_port=str(auth_port),
        radius_acct_port=str(acct_port),
        radius_disconnect_poll_seconds="0.2",
        radius_disconnect_timeout_seconds="1",
    )
    auth, acct = Client(auth_port, source="::1"), Client(acct_port, source="::1")
    try:
        voucher = space.create_id(AccessCode="V6CODE", MinutesIncluded=30)
        device = "AA-00-00-00-06-01"
        login = access_request(user="V6CODE", device=device)
        raw = None
        for _ in range(50):  # until the listeners are up
            raw = auth.exchange(bytes(login.RequestPacket()), timeout=0.5)
            if raw is not None:
                break
        accepted = reply_of(login, raw)
        assert accepted.code == rp.AccessAccept
        session = accepted["Class"][0]
        _accounting_start(acct, code="V6CODE", device=device, session=session)
        deleted = space.delete(voucher)
        assert deleted.status_code == 200, deleted.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not _disconnects(store):
            time.sleep(0.1)
        found = _disconnects(store)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        auth.close()
        acct.close()
        nas.close()
        http.close()
        store.dispose()
    assert [(outcome, d["SessionId"], d["AcctSessionId"]) for outcome, d in found] == [
        ("Ack", session.decode("ascii"), "acct-v6")
    ]
    assert len(nas.received) == 1
    request = nas.received[0]
    assert request["code"] == rp.DisconnectRequest
    assert request["signed"] is True
    assert request["from"] == "::1"
    assert (request["User-Name"], request["Acct-Session-Id"], request["Calling-Station-Id"]) == (
        "V6CODE",
        "acct-v6",
        device,
    )
    assert abs(request["Event-Timestamp"] - request["arrived"]) <= 2
