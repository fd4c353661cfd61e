"""Concurrent writers (issue 11): every write operation, run by parallel clients against
``keyledger serve --workers 2`` on each database, leaves a state that some sequential execution
of the acknowledged requests would have left.

One server per database for the module. Each case names what a sequential execution allows and
checks the final state (through the API or the store) against it; docs/reliability.md, section
"Concurrent writers (issue 11)", lists the guarantees and the figures of a full-size run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select

from keyledger.domain.callers.users import add_user
from keyledger.domain.credentials import reservation_repository as credentials
from keyledger.domain.properties.models import Property
from keyledger.store import Store
from keyledger.store.schema import events
from tests.ops.harness import mews_caller, running_server
from tests.support import (
    ALL_ROLES,
    MEWS_PATH,
    NEXUDUS_PATH,
    DatabaseFactory,
    record_figures,
    scaled,
    sealing_for,
    settings_for,
    token_parameters,
)

pytestmark = pytest.mark.slow

T = TypeVar("T")
PARALLEL = 20  # clients racing in one round (the reviewers' figure)
ROUNDS = scaled(3)
PASSWORD = "a long password"


@dataclass
class Server:
    base: str
    database_url: str
    store: Store

    @property
    def dialect(self) -> str:
        return self.store.dialect

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60)


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url = databases.new_url()
    log = tmp_path_factory.mktemp("concurrency") / "server.log"
    with running_server(
        url,
        log,
        auth_cache_seconds="0",
        auth_failures_per_caller="0",
        auth_failures_per_account="0",
        auth_failures_per_address="0",
        # The reader lock-out races below refuse hundreds of checks with one token: the guessing
        # budgets (tests/ops/test_guessing.py) must not stop them first.
        guess_budget_per_caller="1000000",
        guess_budget_per_property="1000000",
    ) as base:
        store = Store(settings_for(url))
        try:
            yield Server(base=base, database_url=url, store=store)
        finally:
            store.dispose()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]


def race(server: Server, calls: Sequence[Callable[[httpx.Client], T]]) -> list[T]:
    """Run ``calls`` at once, each on a client (connection) of its own, released together."""
    clients = [server.client() for _ in calls]
    barrier = threading.Barrier(len(calls))

    def run(index: int) -> T:
        barrier.wait(timeout=30)
        return calls[index](clients[index])

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, range(len(calls))))
    finally:
        for client in clients:
            client.close()


# --- tenants -------------------------------------------------------------------------------


@dataclass
class Space:
    """A property reached as a Mews integration (and /api/v1) and as a Nexudus user."""

    prop: Property
    mews: dict[str, str]
    email: str

    @property
    def auth(self) -> tuple[str, str]:
        return (self.email, PASSWORD)

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.mews['AccessToken']}"}


def new_space(server: Server) -> Space:
    prop, mews = mews_caller(server.store, f"Race{uuid.uuid4().hex[:6]}")
    email = f"race-{uuid.uuid4().hex[:8]}@example.com"
    add_user(
        server.store,
        email=email,
        password=PASSWORD,
        business_ids=[prop.business_id],
        roles=ALL_ROLES,
    )
    return Space(prop=prop, mews=mews, email=email)


def create_voucher(http: httpx.Client, space: Space, **fields: Any) -> int:
    body = {"BusinessId": space.prop.business_id, "AccessCode": uuid.uuid4().hex[:10], **fields}
    response = http.post(NEXUDUS_PATH, json=body, auth=space.auth)
    assert response.status_code == 200, response.text
    return int(response.json()["Value"]["Id"])


def voucher(http: httpx.Client, space: Space, voucher_id: int) -> dict[str, Any]:
    response = http.get(f"{NEXUDUS_PATH}/{voucher_id}", auth=space.auth)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def command(
    space: Space, key: str, ids: list[int], **parameters: Any
) -> Callable[[httpx.Client], int]:
    body = {
        "Key": key,
        "Ids": ids,
        "Parameters": [{"Name": n, "Value": v} for n, v in parameters.items()],
    }

    def send(http: httpx.Client) -> int:
        return http.post(f"{NEXUDUS_PATH}/runcommand", json=body, auth=space.auth).status_code

    return send


def session_call(space: Space, action: str, session: str) -> Callable[[httpx.Client], int]:
    """A hotspot session's ``usage`` or ``end`` report of 60 s."""

    def send(http: httpx.Client) -> int:
        return http.post(
            f"/api/v1/hotspot/sessions/{session}/{action}",
            json={"ElapsedSeconds": 60},
            headers=space.bearer,
        ).status_code

    return send


def mews(space: Space, operation: str, **body: Any) -> Callable[[httpx.Client], httpx.Response]:
    def send(http: httpx.Client) -> httpx.Response:
        return http.post(f"{MEWS_PATH}/{operation}", json={**space.mews, **body})

    return send


def event_count(server: Server, kind: str, **where: Any) -> int:
    with server.store.read() as conn:
        return int(
            conn.execute(
                select(func.count())
                .select_from(events)
                .where(events.c.kind == kind, *(events.c[k] == v for k, v in where.items()))
            ).scalar_one()
        )


# --- finding 1: voucher minutes --------------------------------------------------------------


def test_parallel_top_ups_are_all_kept(server: Server) -> None:
    """Finding 1: N parallel ADD_MINUTES of 1 on one voucher, all acknowledged: the budget and
    what is left grow by exactly N."""
    space = new_space(server)
    with server.client() as http:
        voucher_id = create_voucher(http, space, MinutesIncluded=100)
        total = 0
        for _ in range(ROUNDS):
            answers = race(
                server, [command(space, "ADD_MINUTES", [voucher_id], Minutes=1)] * PARALLEL
            )
            assert answers == [200] * PARALLEL
            total += PARALLEL
            found = voucher(http, space, voucher_id)
            assert (found["MinutesIncluded"], found["MinutesLeft"]) == (100 + total, 100 + total)
    record_figures(f"concurrency_add_minutes_{server.dialect}", rounds=ROUNDS, parallel=PARALLEL)


def test_usage_reports_and_top_ups_never_give_minutes_back(server: Server) -> None:
    """Finding 1: usage reports (60 s each) on two vouchers racing with top-ups of both (their
    Ids in either order): minutes left = budget + top-ups minus reported minutes for each, the
    value every sequential order gives (the budget never runs out), and every request answered
    200 (no deadlock between a group of reports and a command)."""
    space = new_space(server)
    devices, reports, top_ups = 3, scaled(150), scaled(20)
    codes = [f"USAGE-{uuid.uuid4().hex[:6]}" for _ in range(2)]
    sessions: list[str] = []
    with server.client() as http:
        ids = [
            create_voucher(http, space, MinutesIncluded=1000, UserLimit=devices, AccessCode=code)
            for code in codes
        ]
        for code in codes:
            for device in range(devices):
                started = http.post(
                    "/api/v1/hotspot/sessions",
                    json={
                        "BusinessId": space.prop.business_id,
                        "AccessCode": code,
                        "DeviceId": f"device-{device}",
                    },
                    headers=space.bearer,
                )
                assert started.status_code == 200 and started.json()["Granted"], started.text
                sessions.append(started.json()["SessionId"])

    # Sessions alternate between the vouchers: reports of both share group commits.
    order = [sessions[n // 2 + (n % 2) * devices] for n in range(2 * devices)]
    calls: list[Callable[[httpx.Client], int]] = [
        session_call(space, "usage", order[n % len(order)]) for n in range(reports)
    ]
    for n in range(top_ups):
        top_up = command(space, "ADD_MINUTES", ids if n % 2 else ids[::-1], Minutes=1)
        calls.insert(n * (len(calls) // top_ups), top_up)
    answers: list[int] = []
    for start in range(0, len(calls), PARALLEL * 2):
        answers += race(server, calls[start : start + PARALLEL * 2])
    assert answers == [200] * len(calls)
    used = Counter(order[n % len(order)] in sessions[:devices] for n in range(reports))
    with server.client() as http:
        found = [voucher(http, space, voucher_id) for voucher_id in ids]
    for state, first in zip(found, (True, False), strict=True):
        assert state["MinutesIncluded"] == 1000 + top_ups
        assert state["MinutesLeft"] == 1000 + top_ups - used[first]
    record_figures(
        f"concurrency_usage_and_top_ups_{server.dialect}", reports=reports, top_ups=top_ups
    )


def test_voucher_commands_over_several_ids_in_opposite_orders(server: Server) -> None:
    """Finding 4 (Nexudus): commands over the same vouchers in opposite orders never deadlock;
    ADD_MINUTES, RESET_MINUTES, EXTEND_VALIDITY and EXPIRE_NOW interleave whole."""
    space = new_space(server)
    with server.client() as http:
        ids = [create_voucher(http, space, MinutesIncluded=100) for _ in range(10)]
    backwards = list(reversed(ids))
    calls = []
    for n in range(PARALLEL * ROUNDS):
        order = ids if n % 2 else backwards
        kind = n % 5
        if kind in (0, 1):
            calls.append(command(space, "ADD_MINUTES", order, Minutes=1))
        elif kind == 2:
            calls.append(command(space, "RESET_MINUTES", order))
        elif kind == 3:
            calls.append(command(space, "EXTEND_VALIDITY", order, ValidTo="2099-01-01T00:00:00Z"))
        else:
            calls.append(command(space, "EXPIRE_NOW", order))
    answers = []
    for start in range(0, len(calls), PARALLEL):
        answers += race(server, calls[start : start + PARALLEL])
    # EXTEND_VALIDITY may follow EXPIRE_NOW (and the other way round): both always apply.
    assert answers == [200] * len(calls)
    adds = sum(1 for n in range(len(calls)) if n % 5 in (0, 1))
    with server.client() as http:
        states = [voucher(http, space, voucher_id) for voucher_id in ids]
    for state in states:
        assert state["MinutesIncluded"] == 100 + adds
        assert state["MinutesLeft"] == 100 + adds  # nothing used: reset and top-ups agree
    # Each command applies to all ten at once, so all ten end with the last one's ValidTo.
    assert len({state["ValidTo"] for state in states}) == 1
    record_figures(f"concurrency_voucher_commands_{server.dialect}", commands=len(calls))


def test_parallel_voucher_writes_of_one_voucher(server: Server) -> None:
    """POST of one code, PUT and DELETE of one voucher in parallel: one create wins, PUTs
    interleave with top-ups whole, exactly one DELETE succeeds (the others find nothing)."""
    space = new_space(server)
    code = f"SAME{uuid.uuid4().hex[:6]}"

    def post(http: httpx.Client) -> int:
        return http.post(
            NEXUDUS_PATH,
            json={"BusinessId": space.prop.business_id, "AccessCode": code, "MinutesIncluded": 5},
            auth=space.auth,
        ).status_code

    created = race(server, [post] * PARALLEL)
    assert sorted(created) == [200] + [400] * (PARALLEL - 1)
    with server.client() as http:
        listed = http.get(NEXUDUS_PATH, params={"AccessToken_AccessCode": code}, auth=space.auth)
        assert listed.status_code == 200
        assert [r["AccessCode"] for r in listed.json()["Records"]] == [code]
        voucher_id = int(listed.json()["Records"][0]["Id"])

    def put(n: int) -> Callable[[httpx.Client], int]:
        def send(http: httpx.Client) -> int:
            return http.put(
                NEXUDUS_PATH,
                json={
                    "Id": voucher_id,
                    "BusinessId": space.prop.business_id,
                    "AccessCode": code,
                    "MinutesIncluded": 50,
                    "Description": f"put {n}",
                },
                auth=space.auth,
            ).status_code

        return send

    calls = [
        put(n) if n % 2 else command(space, "ADD_MINUTES", [voucher_id], Minutes=1)
        for n in range(PARALLEL)
    ]
    assert race(server, calls) == [200] * PARALLEL
    with server.client() as http:
        found = voucher(http, space, voucher_id)
    # Sequentially: the last PUT sets 50, the top-ups after it add 1 each, left follows.
    assert 50 <= found["MinutesIncluded"] <= 50 + PARALLEL // 2
    assert found["MinutesLeft"] == found["MinutesIncluded"]
    assert found["Description"] in {f"put {n}" for n in range(1, PARALLEL, 2)}

    def delete(http: httpx.Client) -> int:
        return http.delete(f"{NEXUDUS_PATH}/{voucher_id}", auth=space.auth).status_code

    deleted = race(server, [delete] * PARALLEL)
    assert sorted(deleted) == [200] + [404] * (PARALLEL - 1)
    assert event_count(server, "credential.deleted", property_id=space.prop.id) == 1


def test_parallel_bulk_creates_make_distinct_codes(server: Server) -> None:
    space = new_space(server)
    count = 25

    def bulk(http: httpx.Client) -> list[str]:
        response = http.post(
            f"{NEXUDUS_PATH}/runcommand",
            json={
                "Key": "BULK_CREATE",
                "Ids": [],
                "Parameters": [
                    {"Name": "Count", "Value": count},
                    {"Name": "Minutes", "Value": 30},
                    {"Name": "BusinessId", "Value": space.prop.business_id},
                ],
            },
            auth=space.auth,
        )
        assert response.status_code == 200, response.text
        return [str(item) for item in response.json().get("Value") or []]

    race(server, [bulk] * PARALLEL)
    with server.client() as http:
        listed = http.get(NEXUDUS_PATH, params={"size": 1000}, auth=space.auth).json()
    codes = [record["AccessCode"] for record in listed["Records"]]
    assert listed["TotalItems"] == count * PARALLEL
    assert len(set(codes)) == len(codes)


# --- finding 2: the collision rule ------------------------------------------------------------


def test_colliding_writes_one_wins(server: Server) -> None:
    """Finding 2: parallel adds of one PinCode (same validity, reaching the whole property)
    and updates of other tokens to that value: exactly one is acknowledged, the others
    refused (403)."""
    space = new_space(server)
    adds, updates = PARALLEL // 2, PARALLEL // 2
    wins = 0
    for round_ in range(ROUNDS):
        value = f"{round_:02d}{uuid.uuid4().int % 10**6:06d}#"
        others = race(
            server,
            [
                mews(space, "add", ResourceAccessTokenParameters=[token_parameters()])
                for _ in range(updates)
            ],
        )
        assert [o.status_code for o in others] == [200] * updates, [o.text for o in others]
        ids = [o.json()["ResourceAccessTokens"][0]["Id"] for o in others]
        calls = [
            mews(
                space,
                "add",
                ResourceAccessTokenParameters=[token_parameters(value=value)],
            )
            for _ in range(adds)
        ] + [
            mews(
                space,
                "update",
                ResourceAccessTokenUpdates=[
                    {"ResourceAccessTokenId": i, "Value": {"Value": value}}
                ],
            )
            for i in ids
        ]
        answers = race(server, calls)
        codes = Counter(answer.status_code for answer in answers)
        assert codes == {200: 1, 403: PARALLEL - 1}, [a.text for a in answers]
        with server.store.read() as conn:
            holding = credentials.reservation_tokens_with_values(
                conn,
                properties={space.prop.id: space.prop},
                property_id=space.prop.id,
                values=[value],
                sealer=server.store.sealer,
            )
        assert len([t for t in holding if t.is_active]) == 1
        wins += 1
    record_figures(
        f"concurrency_collisions_{server.dialect}", rounds=ROUNDS, parallel=PARALLEL, wins=wins
    )


# --- finding 4: multi-row Mews writes ---------------------------------------------------------


def test_update_batches_in_opposite_orders(server: Server) -> None:
    """Finding 4: update batches of the same 20 tokens in opposite orders: every batch answered
    200 (no deadlock) and the tokens end as one batch left them (batches whole)."""
    space = new_space(server)
    with server.client() as http:
        added = http.post(
            f"{MEWS_PATH}/add",
            json={
                **space.mews,
                "ResourceAccessTokenParameters": [token_parameters() for _ in range(20)],
            },
        )
        assert added.status_code == 200, added.text
    ids = [t["Id"] for t in added.json()["ResourceAccessTokens"]]

    def batch(number: int) -> Callable[[httpx.Client], httpx.Response]:
        order = ids if number % 2 else list(reversed(ids))
        return mews(
            space,
            "update",
            ResourceAccessTokenUpdates=[
                {"ResourceAccessTokenId": i, "Value": {"Value": f"{number:04d}{ids.index(i):02d}#"}}
                for i in order
            ],
        )

    batches = PARALLEL * ROUNDS
    answers: list[httpx.Response] = []
    for start in range(0, batches, PARALLEL):
        answers += race(server, [batch(n) for n in range(start, min(batches, start + PARALLEL))])
    assert [a.status_code for a in answers] == [200] * batches, [
        a.text for a in answers if a.status_code != 200
    ]
    with server.client() as http:
        listed = http.post(
            f"{MEWS_PATH}/getAll",
            json={**space.mews, "ResourceAccessTokenIds": ids, "Limitation": {"Count": 100}},
        ).json()["ResourceAccessTokens"]
    final = {t["Id"]: t["Value"] for t in listed}
    assert len({value[:4] for value in final.values()}) == 1  # one batch, whole
    assert all(final[i][4:6] == f"{n:02d}" for n, i in enumerate(ids))
    record_figures(f"concurrency_update_batches_{server.dialect}", batches=batches, tokens=20)


def test_delete_batches_in_opposite_orders(server: Server) -> None:
    """Deletes of the same tokens in opposite orders: all answered 200, every token deleted
    once (one credential.deleted event each)."""
    space = new_space(server)
    with server.client() as http:
        added = http.post(
            f"{MEWS_PATH}/add",
            json={
                **space.mews,
                "ResourceAccessTokenParameters": [token_parameters() for _ in range(20)],
            },
        )
    ids = [t["Id"] for t in added.json()["ResourceAccessTokens"]]
    calls = [
        mews(space, "delete", Ids=ids if n % 2 else list(reversed(ids))) for n in range(PARALLEL)
    ]
    answers = race(server, calls)
    assert [a.status_code for a in answers] == [200] * PARALLEL, [a.text for a in answers]
    assert event_count(server, "credential.deleted", property_id=space.prop.id) == len(ids)


# --- the resource tree ------------------------------------------------------------------------


def test_a_parent_is_not_deleted_under_a_new_child(server: Server) -> None:
    """Saving a floor under a building races with deleting the building: one of the two wins
    (the other is refused: 409 "has children", or the parent is gone), never both, so no
    resource is left under a deleted parent."""
    space = new_space(server)

    def save(floor: uuid.UUID, building: uuid.UUID) -> Callable[[httpx.Client], int]:
        def send(http: httpx.Client) -> int:
            return http.put(
                f"/api/v1/resources/{floor}",
                json={"Kind": "Floor", "Name": "F", "ParentId": str(building)},
                headers=space.bearer,
            ).status_code

        return send

    def delete(building: uuid.UUID) -> Callable[[httpx.Client], int]:
        def send(http: httpx.Client) -> int:
            return http.delete(f"/api/v1/resources/{building}", headers=space.bearer).status_code

        return send

    pairs = PARALLEL
    for _ in range(ROUNDS):
        buildings = [uuid.uuid4() for _ in range(pairs)]
        with server.client() as http:
            for building in buildings:
                saved = http.put(
                    f"/api/v1/resources/{building}",
                    json={"Kind": "Building", "Name": "B"},
                    headers=space.bearer,
                )
                assert saved.status_code == 200, saved.text
        calls: list[Callable[[httpx.Client], int]] = []
        for building in buildings:
            calls += [save(uuid.uuid4(), building), delete(building)]
        answers = race(server, calls)
        for n in range(pairs):
            outcome = (answers[2 * n], answers[2 * n + 1])
            assert outcome in {(200, 409), (400, 204), (409, 204), (422, 204)}, answers
    with server.client() as http:
        listed = http.get("/api/v1/resources", headers=space.bearer).json()["Resources"]
    uids = {r["Id"] for r in listed}
    for resource in listed:
        assert resource["ParentId"] is None or resource["ParentId"] in uids


# --- door checks and hotspot sessions ---------------------------------------------------------


def test_refused_door_checks_lock_the_reader_once(server: Server) -> None:
    """Parallel refused checks at four readers at once: at each, exactly the refusal past the
    limit (10) locks it, once, and the reader answers Throttled afterwards."""
    space = new_space(server)
    readers = 4

    def check(reader: str) -> Callable[[httpx.Client], str]:
        def send(http: httpx.Client) -> str:
            response = http.post(
                "/api/v1/access/check",
                json={
                    "ResourceId": reader,
                    "Type": "PinCode",
                    "Value": "no-such-pin#",
                    "At": "2030-01-02T12:00:00Z",
                },
                headers=space.bearer,
            )
            assert response.status_code == 200, response.text
            return str(response.json()["Reason"])

        return send

    for _ in range(ROUNDS):
        uids = [str(uuid.uuid4()) for _ in range(readers)]
        with server.client() as http:
            for uid in uids:
                saved = http.put(
                    f"/api/v1/resources/{uid}",
                    json={"Kind": "Room", "Name": "Room"},
                    headers=space.bearer,
                )
                assert saved.status_code == 200, saved.text
        reasons = race(server, [check(uid) for _ in range(PARALLEL) for uid in uids])
        assert set(reasons) <= {"UnknownCredential", "Throttled"}
        with server.store.read() as conn:
            locks = conn.execute(
                select(events.c.resource_uid, events.c.details).where(
                    events.c.kind == "reader.throttled",
                    events.c.resource_uid.in_([uuid.UUID(uid) for uid in uids]),
                )
            ).all()
        assert sorted(str(uid) for uid, _ in locks) == sorted(uids)  # each locked once
        assert [details["RefusedChecks"] for _, details in locks] == [11] * readers
        with server.client() as http:
            assert {check(uid)(http) for uid in uids} == {"Throttled"}


def test_parallel_starts_respect_the_user_limit(server: Server) -> None:
    """Devices starting sessions on one voucher at once: exactly UserLimit are granted; then
    parallel ends: every granted session ends once."""
    space = new_space(server)
    limit = 3
    with server.client() as http:
        create_voucher(http, space, MinutesIncluded=60, UserLimit=limit, AccessCode="START-RACE")

    def start(device: int) -> Callable[[httpx.Client], dict[str, Any]]:
        def send(http: httpx.Client) -> dict[str, Any]:
            response = http.post(
                "/api/v1/hotspot/sessions",
                json={
                    "BusinessId": space.prop.business_id,
                    "AccessCode": "START-RACE",
                    "DeviceId": f"device-{device}",
                },
                headers=space.bearer,
            )
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body

        return send

    decisions = race(server, [start(n) for n in range(PARALLEL)])
    granted = [d["SessionId"] for d in decisions if d["Granted"]]
    assert len(granted) == limit
    assert {d["Reason"] for d in decisions if not d["Granted"]} == {"TooManyDevices"}

    ends = race(server, [session_call(space, "end", s) for s in granted for _ in range(2)])
    assert Counter(ends) == {200: limit, 409: limit}  # the second end of each finds it ended
    assert event_count(server, "hotspot.session_ended", property_id=space.prop.id) == limit


# --- finding 3: refresh tokens -----------------------------------------------------------------


def _password_grant(http: httpx.Client, space: Space) -> dict[str, Any]:
    granted = http.post(
        "/api/token", data={"grant_type": "password", "username": space.email, "password": PASSWORD}
    )
    assert granted.status_code == 200, granted.text
    body: dict[str, Any] = granted.json()
    return body


def _refresh(token: str) -> Callable[[httpx.Client], httpx.Response]:
    def send(http: httpx.Client) -> httpx.Response:
        return http.post("/api/token", data={"grant_type": "refresh_token", "refresh_token": token})

    return send


def _works(http: httpx.Client, access_token: str) -> bool:
    response = http.get(NEXUDUS_PATH, headers={"Authorization": f"Bearer {access_token}"})
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


def test_a_refresh_token_is_spent_once(server: Server) -> None:
    """Finding 3: parallel refreshes of one refresh token: exactly one gets a pair; the old
    bearer stops working; the new one works unless a refresh that read the token already
    rotated revoked the family (a replay), as a sequential execution would."""
    space = new_space(server)
    families_revoked = 0  # replays seen so far (user.refresh_token_reused events)
    for _ in range(ROUNDS):
        with server.client() as http:
            pair = _password_grant(http, space)
        answers = race(server, [_refresh(pair["refresh_token"])] * 8)
        codes = Counter(a.status_code for a in answers)
        assert codes == {200: 1, 400: 7}, [a.text for a in answers]
        assert {a.json()["error"] for a in answers if a.status_code == 400} == {"invalid_grant"}
        (won,) = [a.json() for a in answers if a.status_code == 200]
        replayed = event_count(server, "user.refresh_token_reused", property_id=space.prop.id)
        with server.client() as http:
            assert not _works(http, pair["access_token"])
            assert _works(http, won["access_token"]) == (replayed == families_revoked)
        families_revoked = replayed
    record_figures(f"concurrency_refresh_{server.dialect}", rounds=ROUNDS, replays=families_revoked)


def test_replaying_a_rotated_refresh_token_revokes_the_family(server: Server) -> None:
    """Finding 3 (both databases): a rotated refresh token used again is refused as before, and
    every pair descended from the same password grant stops working; an event says so."""
    space = new_space(server)
    with server.client() as http:
        first = _password_grant(http, space)
        other = _password_grant(http, space)  # another family: untouched
        second = _refresh(first["refresh_token"])(http).json()
        third = _refresh(second["refresh_token"])(http).json()
        assert _works(http, third["access_token"])
        replay = _refresh(first["refresh_token"])(http)
        unknown = _refresh("not-a-token-we-issued")(http)
        assert replay.status_code == unknown.status_code == 400
        assert replay.json() == unknown.json()
        assert not _works(http, third["access_token"])
        assert _refresh(third["refresh_token"])(http).status_code == 400
        assert _works(http, other["access_token"])
    with server.store.read() as conn:
        revoked = conn.execute(
            select(events.c.details["BearerTokensRevoked"].as_integer())
            .where(
                events.c.kind == "user.refresh_token_reused", events.c.property_id == space.prop.id
            )
            .order_by(events.c.id)
        ).scalars()
        # The first replay revoked the third pair (the first two were rotated); the refused
        # refresh of the third pair, a replay too, found nothing left to revoke.
        assert list(revoked) == [1, 0]


# --- admin changes racing with requests -------------------------------------------------------


def _admin(server: Server, *arguments: str) -> None:
    env = {
        **os.environ,
        "KEYLEDGER_DATABASE_URL": server.database_url,
        "KEYLEDGER_LOG_LEVEL": "WARNING",
        **{f"KEYLEDGER_{k.upper()}": v for k, v in sealing_for(server.database_url).items()},
    }
    done = subprocess.run(
        [sys.executable, "-m", "keyledger", "admin", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _hammer(
    server: Server, send: Callable[[httpx.Client], int], change: Callable[[], None]
) -> tuple[int, int, list[int]]:
    """Four clients send requests in a loop while ``change`` runs: how many succeeded, how many
    were refused, and the answers of the requests sent after ``change`` returned."""
    changed_at: list[float] = []
    stop = threading.Event()
    late: list[int] = []
    counts = Counter[str]()
    lock = threading.Lock()

    def client() -> None:
        with server.client() as http:
            while not stop.is_set():
                sent = time.monotonic()
                status = send(http)
                with lock:
                    if changed_at and sent > changed_at[0]:
                        late.append(status)
                    counts["ok" if status == 200 else "refused"] += 1

    threads = [threading.Thread(target=client) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    change()
    changed_at.append(time.monotonic())
    deadline = time.monotonic() + 60
    while len(late) < 40 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    assert len(late) >= 40, f"only {len(late)} requests after the change (a client died?)"
    return counts["ok"], counts["refused"], late


def test_revoked_access_token_stops_at_once(server: Server) -> None:
    """`keyledger admin revoke-access-token` while Mews requests run (auth cache 0): every
    request sent after the command returned is refused (401)."""
    space = new_space(server)

    def send(http: httpx.Client) -> int:
        return mews(space, "add", ResourceAccessTokenParameters=[token_parameters()])(
            http
        ).status_code

    ok, _, late = _hammer(
        server,
        send,
        lambda: _admin(server, "revoke-access-token", "--access-token", space.mews["AccessToken"]),
    )
    assert ok > 0
    assert set(late) == {401}


def test_disabled_user_stops_at_once(server: Server) -> None:
    """`keyledger admin disable-user` while Basic and bearer requests run: every request sent
    after the command returned is refused (401), and its refresh token gets no new pair."""
    space = new_space(server)
    with server.client() as http:
        pair = _password_grant(http, space)
        voucher_id = create_voucher(http, space, MinutesIncluded=10)
    turn = iter(range(10**9))

    def send(http: httpx.Client) -> int:
        if next(turn) % 2:
            bearer = {"Authorization": f"Bearer {pair['access_token']}"}
            return http.get(f"{NEXUDUS_PATH}/{voucher_id}", headers=bearer).status_code
        return command(space, "ADD_MINUTES", [voucher_id], Minutes=1)(http)

    ok, _, late = _hammer(
        server, send, lambda: _admin(server, "disable-user", "--email", space.email)
    )
    assert ok > 0
    assert set(late) == {401}
    with server.client() as http:
        assert _refresh(pair["refresh_token"])(http).status_code == 400
