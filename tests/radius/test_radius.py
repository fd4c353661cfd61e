"""RADIUS against `keyledger serve --workers 2` on each database, with Debian's radclient:
PAP and CHAP, Message-Authenticator, silent drops, every Reject reason, UserLimit, accounting with
retransmits and reorders, duplicates, guessing budgets and Disconnect-Request (docs/radius.md)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, add_user
from keyledger.domain.nas.service import add_nas
from keyledger.domain.properties import repository as properties
from keyledger.domain.properties.service import add_property
from keyledger.store import Store
from keyledger.store.schema import events
from tests.ops.harness import start_server
from tests.radius.support import (
    Answer,
    Client,
    NasStandIn,
    access_request,
    class_of,
    radclient,
    reply_of,
    session_id_of,
)
from tests.support import (
    DatabaseFactory,
    NexudusTenant,
    free_port,
    settings_for,
)

pytestmark = pytest.mark.slow

GUESS_BUDGET = 12
GUESSER = "127.0.0.2"  # a NAS of its own, to use up its guessing budget
LAX = "127.0.0.3"  # a NAS allowed to leave Message-Authenticator out
UNKNOWN = "127.0.0.9"  # no NAS
RACER = "127.0.0.4"  # a NAS of its own whose guesses race each other


@dataclass
class RadiusDeployment:
    store: Store
    space: NexudusTenant
    guess_space: NexudusTenant
    lax_space: NexudusTenant
    race_space: NexudusTenant
    auth_port: int
    acct_port: int
    nas: NasStandIn

    def auth(self, attributes: str, secret: str = "testing123") -> Answer:
        return radclient(self.auth_port, "auth", attributes, secret)

    def acct(self, attributes: str) -> Answer:
        return radclient(self.acct_port, "acct", attributes)

    def voucher(self, code: str, space: NexudusTenant | None = None, **fields: Any) -> int:
        return (space or self.space).create_id(AccessCode=code, **fields)

    def record(self, voucher: int) -> dict[str, Any]:
        response = self.space.get(f"/{voucher}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def events(self, kind: str) -> list[tuple[str | None, dict[str, Any]]]:
        with self.store.read() as conn:
            rows = conn.execute(
                select(events.c.outcome, events.c.details)
                .where(events.c.kind == kind)
                .order_by(events.c.id)
            )
            return [(row[0], row[1]) for row in rows]


def _space(store: Store, http: httpx.Client) -> NexudusTenant:
    prop = add_property(store, name=f"Hotspot {uuid.uuid4().hex[:6]}")
    email, password = f"wifi-{uuid.uuid4().hex[:8]}@example.com", "a long password"
    add_user(
        store,
        email=email,
        password=password,
        business_ids=[prop.business_id],
        roles=ACCESS_TOKEN_ROLES,
    )
    return NexudusTenant(http, email, password, prop.business_id, prop.enterprise_id)


@pytest.fixture(scope="module")
def radius(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RadiusDeployment]:
    url = databases.new_url()
    store = Store(settings_for(url))
    port = free_port()
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    space, guess_space, lax_space, race_space = (_space(store, http) for _ in range(4))
    nas = NasStandIn()
    add_nas(
        store,
        business_id=space.business_id,
        address="127.0.0.1",
        secret="testing123",
        name="Lobby",
        coa_port=nas.port,
    )
    add_nas(store, business_id=guess_space.business_id, address=GUESSER, secret="testing123")
    add_nas(
        store,
        business_id=lax_space.business_id,
        address=f"{LAX}/32",
        secret="testing123",
        allow_missing_message_authenticator=True,
    )
    add_nas(store, business_id=race_space.business_id, address=RACER, secret="testing123")
    from tests.radius.support import free_udp_port

    auth_port, acct_port = free_udp_port(), free_udp_port()
    log = Path(tmp_path_factory.mktemp("radius")) / "serve.log"
    server = start_server(
        url,
        port,
        log,
        radius_auth_port=str(auth_port),
        radius_acct_port=str(acct_port),
        guess_budget_per_caller=str(GUESS_BUDGET),
        radius_disconnect_poll_seconds="0.2",
        radius_disconnect_timeout_seconds="1",
        radius_disconnect_attempts="2",
    )
    deployment = RadiusDeployment(
        store, space, guess_space, lax_space, race_space, auth_port, acct_port, nas
    )
    try:
        _wait_for_radius(deployment)
        yield deployment
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        nas.close()
        http.close()
        store.dispose()


def _wait_for_radius(deployment: RadiusDeployment) -> None:
    """Both workers answer (their lifespans started after /readyz answered for one)."""
    deadline = time.monotonic() + 60
    answered = 0
    while time.monotonic() < deadline and answered < 4:
        answer = deployment.auth(
            'User-Name = "warm-up", User-Password = "x", Message-Authenticator = 0x00'
        )
        answered = answered + 1 if answer.kind else 0
    assert answered, "RADIUS did not answer"


def _login(code: str, device: str, *, chap: bool = False, password: str | None = None) -> str:
    secret = "CHAP-Password" if chap else "User-Password"
    return (
        f'User-Name = "{code}", {secret} = "{code if password is None else password}", '
        f'Calling-Station-Id = "{device}", Message-Authenticator = 0x00'
    )


def _utc(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


# --- authentication --------------------------------------------------------------------------


def test_pap_and_chap_log_devices_in_up_to_the_user_limit(radius: RadiusDeployment) -> None:
    valid_to = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=2)
    radius.voucher("PAPCHAP1", MinutesIncluded=30, UserLimit=2, ValidTo=_utc(valid_to))
    pap = radius.auth(_login("PAPCHAP1", "AA-00-00-00-00-01"))
    assert pap.kind == "Access-Accept", pap.output
    assert 1790 <= int(pap.attributes["Session-Timeout"]) <= 1800
    assert pap.attributes["Acct-Interim-Interval"] == "60"
    assert pap.attributes["Idle-Timeout"] == "600"
    assert "Message-Authenticator" in pap.attributes
    assert uuid.UUID(session_id_of(pap))
    terminate = pap.attributes["WISPr-Session-Terminate-Time"]
    assert datetime.fromisoformat(terminate) == valid_to
    chap = radius.auth(_login("PAPCHAP1", "AA-00-00-00-00-02", chap=True))
    assert chap.kind == "Access-Accept", chap.output
    assert session_id_of(chap) != session_id_of(pap)
    # A third device: UserLimit 2, as over HTTP; the first device again gets its session back.
    third = radius.auth(_login("PAPCHAP1", "AA-00-00-00-00-03"))
    assert (third.kind, third.attributes["Reply-Message"]) == ("Access-Reject", "TooManyDevices")
    again = radius.auth(_login("PAPCHAP1", "AA-00-00-00-00-01", chap=True))
    assert session_id_of(again) == session_id_of(pap)


def test_session_timeout_stops_at_valid_to(radius: RadiusDeployment) -> None:
    valid_to = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    radius.voucher("SHORTDAY", MinutesIncluded=600, ValidTo=_utc(valid_to))
    answer = radius.auth(_login("SHORTDAY", "AA-00-00-00-01-01"))
    assert answer.kind == "Access-Accept", answer.output
    assert 280 <= int(answer.attributes["Session-Timeout"]) <= 300


def test_every_reject_reason_is_the_http_one(radius: RadiusDeployment) -> None:
    now = datetime.now(UTC)
    radius.voucher(
        "GONE1", ValidFrom=_utc(now - timedelta(days=2)), ValidTo=_utc(now - timedelta(days=1))
    )
    radius.voucher("LATER1", ValidFrom=_utc(now + timedelta(days=1)))
    radius.voucher("EMPTY1", MinutesIncluded=0)
    radius.voucher("RIGHT1", MinutesIncluded=30)
    cases = {
        "UnknownCredential": _login("NOSUCH1", "AA-00-00-00-02-01"),
        "Expired": _login("GONE1", "AA-00-00-00-02-02"),
        "NotYetValid": _login("LATER1", "AA-00-00-00-02-03"),
        "NoMinutesLeft": _login("EMPTY1", "AA-00-00-00-02-04"),
        # A password that does not prove the code: as if the code were unknown.
        "UnknownCredential ": _login("RIGHT1", "AA-00-00-00-02-05", password="WRONG1"),
    }
    for reason, attributes in cases.items():
        answer = radius.auth(attributes)
        assert answer.kind == "Access-Reject", answer.output
        assert answer.attributes["Reply-Message"] == reason.strip()
        assert "Message-Authenticator" in answer.attributes
    outcomes = [
        (outcome, details["DeviceId"])
        for outcome, details in radius.events("hotspot.session_started")
        if details["DeviceId"].startswith("AA-00-00-00-02-")
    ]
    assert outcomes == [
        ("UnknownCredential", "AA-00-00-00-02-01"),
        ("Expired", "AA-00-00-00-02-02"),
        ("NotYetValid", "AA-00-00-00-02-03"),
        ("NoMinutesLeft", "AA-00-00-00-02-04"),
        ("UnknownCredential", "AA-00-00-00-02-05"),
    ]


def test_unsigned_unknown_and_wrongly_signed_requests_get_no_answer(
    radius: RadiusDeployment,
) -> None:
    radius.voucher("SILENT1", MinutesIncluded=30)
    # Without Message-Authenticator, from a NAS that requires it.
    bare = radius.auth('User-Name = "SILENT1", User-Password = "SILENT1"')
    assert bare.kind is None, bare.output
    # With the wrong secret.
    wrong = radius.auth(_login("SILENT1", "AA-00-00-00-03-01"), secret="not-the-secret")
    assert wrong.kind is None, wrong.output
    # From an address no NAS has.
    stranger = Client(radius.auth_port, source=UNKNOWN)
    try:
        request = access_request(user="SILENT1", device="AA-00-00-00-03-02")
        assert stranger.exchange(request.RequestPacket(), timeout=1.5) is None
    finally:
        stranger.close()
    # The same request, signed, is answered.
    signed = radius.auth(_login("SILENT1", "AA-00-00-00-03-03"))
    assert signed.kind == "Access-Accept", signed.output
    # None of the dropped ones was decided.
    devices = [d["DeviceId"] for _, d in radius.events("hotspot.session_started")]
    assert "AA-00-00-00-03-01" not in devices
    assert "AA-00-00-00-03-02" not in devices


def test_a_nas_added_so_may_leave_message_authenticator_out(radius: RadiusDeployment) -> None:
    radius.voucher("LAXCODE1", radius.lax_space, MinutesIncluded=30)
    client = Client(radius.auth_port, source=LAX)
    try:
        request = access_request(user="LAXCODE1", device="lax-1", message_authenticator=False)
        reply = reply_of(request, client.exchange(request.RequestPacket()))
        assert reply.code == 2  # Access-Accept, signed with a Message-Authenticator all the same
    finally:
        client.close()


def test_a_retransmitted_access_request_is_decided_once(radius: RadiusDeployment) -> None:
    radius.voucher("TWICE1", MinutesIncluded=30)
    client = Client(radius.auth_port)
    try:
        request = access_request(user="TWICE1", device="dup-1")
        raw = request.RequestPacket()
        first = client.exchange(raw)
        second = client.exchange(raw)
    finally:
        client.close()
    assert first is not None
    assert second == first
    decided = [d for _, d in radius.events("hotspot.session_started") if d["DeviceId"] == "dup-1"]
    assert len(decided) == 1


def test_unknown_codes_use_up_the_nas_guessing_budget(radius: RadiusDeployment) -> None:
    radius.voucher("REALCODE1", radius.guess_space, MinutesIncluded=30)
    client = Client(radius.auth_port, source=GUESSER)
    try:
        reasons = []
        for attempt in range(GUESS_BUDGET + 1):
            request = access_request(user=f"GUESS{attempt:04d}", device="guesser")
            reply = reply_of(request, client.exchange(request.RequestPacket()))
            reasons.append(reply["Reply-Message"][0])
        valid = access_request(user="REALCODE1", device="guesser")
        valid_reply = reply_of(valid, client.exchange(valid.RequestPacket()))
    finally:
        client.close()
    assert reasons == ["UnknownCredential"] * GUESS_BUDGET + ["Throttled"]
    assert (valid_reply.code, valid_reply["Reply-Message"][0]) == (3, "Throttled")
    throttled = [d for outcome, d in radius.events("guessing.throttled")]
    assert any(d.get("Budget") == "Caller" for d in throttled)


def _race(source: str, port: int, requests: list[Any]) -> list[str]:
    """Send ``requests`` at once, each from a socket of its own (so both workers take some:
    SO_REUSEPORT spreads sources); the reply reasons, or "Accept"."""
    clients = [Client(port, source=source) for _ in requests]
    raws = [request.RequestPacket() for request in requests]
    answers: list[bytes | None] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def send(index: int) -> None:
        start.wait()
        answers[index] = clients[index].exchange(raws[index], timeout=10)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(len(requests))]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        for client in clients:
            client.close()
    replies = [reply_of(request, raw) for request, raw in zip(requests, answers, strict=True)]
    return ["Accept" if r.code == 2 else r["Reply-Message"][0] for r in replies]


def test_parallel_logins_from_both_workers_keep_the_user_limit(radius: RadiusDeployment) -> None:
    """Twenty-four devices log in with one voucher at once: exactly UserLimit of them get in,
    whichever worker and group commit decides them."""
    radius.voucher("CROWD1", MinutesIncluded=30, UserLimit=3)
    requests = [access_request(user="CROWD1", device=f"crowd-{n}") for n in range(24)]
    reasons = _race("127.0.0.1", radius.auth_port, requests)
    assert sorted(reasons) == ["Accept"] * 3 + ["TooManyDevices"] * 21
    started = [
        (outcome, d)
        for outcome, d in radius.events("hotspot.session_started")
        if d["DeviceId"].startswith("crowd-")
    ]
    assert sorted(outcome or "" for outcome, _ in started) == sorted(
        ["Granted"] * 3 + ["TooManyDevices"] * 21
    )
    assert len({d["SessionId"] for outcome, d in started if outcome == "Granted"}) == 3


def test_parallel_guesses_use_the_budget_up_exactly(radius: RadiusDeployment) -> None:
    """Unknown codes sent at once from one NAS: exactly the budget's worth are counted as
    UnknownCredential, every other one is Throttled, and one guessing.throttled is written."""
    requests = [
        access_request(user=f"RACE{n:04d}", device="racer") for n in range(GUESS_BUDGET + 12)
    ]
    reasons = _race(RACER, radius.auth_port, requests)
    assert sorted(reasons) == ["Throttled"] * 12 + ["UnknownCredential"] * GUESS_BUDGET
    with radius.store.read() as conn:
        prop = properties.by_business_id(conn, radius.race_space.business_id)
        assert prop is not None
        throttled = conn.execute(
            select(events.c.details).where(
                events.c.kind == "guessing.throttled", events.c.property_id == prop.id
            )
        ).all()
    caller = [d for (d,) in throttled if d["Budget"] == "Caller"]
    assert [d["Misses"] for d in caller] == [GUESS_BUDGET]


# --- accounting ------------------------------------------------------------------------------


def _acct(
    status: str, session: str, seconds: int, *, accepted: Answer, device: str, code: str
) -> str:
    return (
        f'Acct-Status-Type = {status}, Acct-Session-Id = "{session}", '
        f"Acct-Session-Time = {seconds}, Class = {class_of(accepted)}, "
        f'User-Name = "{code}", Calling-Station-Id = "{device}"'
    )


def test_accounting_takes_the_growth_of_session_time_once(radius: RadiusDeployment) -> None:
    voucher = radius.voucher("ACCT1", MinutesIncluded=30)
    accepted = radius.auth(_login("ACCT1", "AA-00-00-00-04-01"))
    assert accepted.kind == "Access-Accept", accepted.output
    session = session_id_of(accepted)
    sent = [
        ("Start", 0),
        ("Interim-Update", 90),
        ("Interim-Update", 90),  # retransmitted (a new packet: radclient, new identifier)
        ("Interim-Update", 60),  # reordered: older than the last one counted
        ("Interim-Update", 120),
        ("Stop", 150),
        ("Stop", 150),  # retransmitted Stop
        ("Interim-Update", 140),  # a late interim after the Stop
    ]
    for status, seconds in sent:
        answer = radius.acct(
            _acct(
                status,
                "acct-1",
                seconds,
                accepted=accepted,
                device="AA-00-00-00-04-01",
                code="ACCT1",
            )
        )
        assert answer.kind == "Accounting-Response", answer.output
    record = radius.record(voucher)
    # 150 seconds: two whole minutes and 30 seconds of the third.
    assert record["MinutesLeft"] == 28
    assert record["LastAccess"] is not None
    usage = [
        d["Seconds"]
        for kind in ("hotspot.usage", "hotspot.session_ended")
        for _, d in radius.events(kind)
        if d.get("SessionId") == session and "Seconds" in d
    ]
    assert sum(usage) == 150
    ended = [o for o, d in radius.events("hotspot.session_ended") if d["SessionId"] == session]
    assert ended == ["Ended"]
    # The session is over: the same device logs in anew with a new session.
    again = radius.auth(_login("ACCT1", "AA-00-00-00-04-01"))
    assert session_id_of(again) != session


def test_accounting_from_a_wrong_secret_gets_no_answer(radius: RadiusDeployment) -> None:
    radius.voucher("ACCT2", MinutesIncluded=30)
    accepted = radius.auth(_login("ACCT2", "AA-00-00-00-05-01"))
    attributes = _acct(
        "Interim-Update", "acct-2", 600, accepted=accepted, device="AA-00-00-00-05-01", code="ACCT2"
    )
    answer = radclient(radius.acct_port, "acct", attributes, secret="not-the-secret")
    assert answer.kind is None, answer.output


def test_a_voucher_used_up_over_radius_ends_with_no_minutes_left(radius: RadiusDeployment) -> None:
    radius.nas.mode = "ack"
    voucher = radius.voucher("ACCT3", MinutesIncluded=1)
    accepted = radius.auth(_login("ACCT3", "AA-00-00-00-06-01"))
    assert int(accepted.attributes["Session-Timeout"]) == 60
    for status, seconds in (("Start", 0), ("Interim-Update", 75)):
        radius.acct(
            _acct(
                status,
                "acct-3",
                seconds,
                accepted=accepted,
                device="AA-00-00-00-06-01",
                code="ACCT3",
            )
        )
    assert radius.record(voucher)["MinutesLeft"] == 0
    refused = radius.auth(_login("ACCT3", "AA-00-00-00-06-02"))
    assert refused.attributes["Reply-Message"] == "NoMinutesLeft"
    # Used up: the NAS is told to disconnect the device (no Stop came).
    session = session_id_of(accepted)
    found = _wait_for(lambda: _disconnect_events(radius, session))
    assert [(o, d["Reason"]) for o, d in found] == [("Ack", "NoMinutesLeft")]


# --- disconnect ------------------------------------------------------------------------------


def _disconnect_events(radius: RadiusDeployment, session: str) -> list[tuple[str | None, Any]]:
    return [(o, d) for o, d in radius.events("hotspot.disconnect") if d["SessionId"] == session]


def _wait_for(condition: Any, seconds: float = 20) -> Any:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("timed out")


@pytest.mark.parametrize(
    ("mode", "outcome", "sends", "withdrawal", "reason"),
    [
        ("ack", "Ack", 1, "delete", "Deleted"),
        ("nak", "Nak", 1, "delete", "Deleted"),
        ("silent", "NoAnswer", 2, "expire", "Expired"),
    ],
)
def test_a_withdrawn_voucher_disconnects_its_radius_sessions(
    radius: RadiusDeployment,
    *,
    mode: str,
    outcome: str,
    sends: int,
    withdrawal: str,
    reason: str,
) -> None:
    code = f"DISC{mode.upper()}"
    device = f"AA-00-00-00-07-{sends}{len(mode)}"
    voucher = radius.voucher(code, MinutesIncluded=30)
    accepted = radius.auth(_login(code, device))
    session = session_id_of(accepted)
    acct_session = f"acct-disc-{mode}"
    started = radius.acct(
        _acct("Start", acct_session, 0, accepted=accepted, device=device, code=code)
    )
    assert started.kind == "Accounting-Response"
    radius.nas.mode = mode
    before = len(radius.nas.received)
    withdrawn = (
        radius.space.delete(voucher)
        if withdrawal == "delete"
        else radius.space.command("EXPIRE_NOW", [voucher])
    )
    assert withdrawn.status_code == 200, withdrawn.text
    found = _wait_for(lambda: _disconnect_events(radius, session))
    assert len(found) == 1
    assert found[0][0] == outcome
    assert found[0][1]["Reason"] == reason
    assert found[0][1]["AcctSessionId"] == acct_session
    if outcome == "Nak":
        assert found[0][1]["ErrorCause"] == 503
    requests = radius.nas.received[before:]
    assert len(requests) == sends
    for request in requests:
        assert request["code"] == 40  # Disconnect-Request
        assert request["signed"] is True  # the Event-Timestamp with the rest
        # RFC 5176 section 3.4: the sending time, against replays (whole seconds).
        assert abs(request["Event-Timestamp"] - request["arrived"]) <= 2
        assert (
            request["User-Name"],
            request["Acct-Session-Id"],
            request["Calling-Station-Id"],
        ) == (
            code,
            acct_session,
            device,
        )
    time.sleep(1.5)  # nothing more is sent once settled
    assert len(radius.nas.received) == before + sends


# --- one set of rules with the HTTP API --------------------------------------------------------


def test_http_and_radius_share_user_limit_sessions_and_events(radius: RadiusDeployment) -> None:
    from keyledger.domain.callers.integrations import add_access_token, add_integration

    integration = add_integration(radius.store, name=f"wifi-{uuid.uuid4().hex[:6]}")
    token = add_access_token(
        radius.store,
        client_token=integration.secret,
        enterprise_ids=[radius.space.enterprise_id],
        scopes=("hotspot",),
    )
    radius.voucher("MIXED1", MinutesIncluded=30, UserLimit=2)
    over_http = radius.space.http.post(
        "/api/v1/hotspot/sessions",
        json={"BusinessId": radius.space.business_id, "AccessCode": "MIXED1", "DeviceId": "mix-1"},
        headers={"Authorization": f"Bearer {token.secret}"},
    )
    assert over_http.status_code == 200, over_http.text
    assert over_http.json()["Granted"] is True
    # The HTTP device over RADIUS gets its session back; a second device fills the voucher.
    same = radius.auth(_login("MIXED1", "mix-1"))
    assert session_id_of(same) == over_http.json()["SessionId"]
    second = radius.auth(_login("MIXED1", "mix-2"))
    assert second.kind == "Access-Accept", second.output
    third = radius.auth(_login("MIXED1", "mix-3"))
    assert third.attributes["Reply-Message"] == "TooManyDevices"
    refused_over_http = radius.space.http.post(
        "/api/v1/hotspot/sessions",
        json={"BusinessId": radius.space.business_id, "AccessCode": "MIXED1", "DeviceId": "mix-4"},
        headers={"Authorization": f"Bearer {token.secret}"},
    )
    assert refused_over_http.json()["Reason"] == "TooManyDevices"
    # One event log: the NAS's decisions are filed with actor kind nas, the token's as integration.
    with radius.store.read() as conn:
        rows = conn.execute(
            select(events.c.actor_kind, events.c.outcome, events.c.details)
            .where(events.c.kind == "hotspot.session_started")
            .order_by(events.c.id)
        ).all()
    mixed = [(r[0], r[1], r[2]["DeviceId"]) for r in rows if r[2]["DeviceId"].startswith("mix-")]
    assert mixed == [
        ("integration", "Granted", "mix-1"),
        ("nas", "Granted", "mix-1"),
        ("nas", "Granted", "mix-2"),
        ("nas", "TooManyDevices", "mix-3"),
        ("integration", "TooManyDevices", "mix-4"),
    ]


def test_accounting_without_class_finds_the_device_session(radius: RadiusDeployment) -> None:
    voucher = radius.voucher("NOCLASS1", MinutesIncluded=30)
    accepted = radius.auth(_login("NOCLASS1", "AA-00-00-00-08-01"))
    assert accepted.kind == "Access-Accept"
    for status, seconds in (("Start", 0), ("Interim-Update", 120)):
        answer = radius.acct(
            f'Acct-Status-Type = {status}, Acct-Session-Id = "noclass-1", '
            f'Acct-Session-Time = {seconds}, User-Name = "NOCLASS1", '
            'Calling-Station-Id = "AA-00-00-00-08-01"'
        )
        assert answer.kind == "Accounting-Response", answer.output
    assert radius.record(voucher)["MinutesLeft"] == 28


def test_status_server_is_answered(radius: RadiusDeployment) -> None:
    from pyrad import packet as rp

    from keyledger.radius.packets import dictionary

    client = Client(radius.auth_port)
    try:
        request = rp.AuthPacket(code=rp.StatusServer, secret=b"testing123", dict=dictionary())
        request.add_message_authenticator()
        reply = reply_of(request, client.exchange(request.RequestPacket()))
        assert reply.code == 2
    finally:
        client.close()
