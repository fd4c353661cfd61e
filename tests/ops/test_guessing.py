"""Guessing budgets through a real ``keyledger serve --workers 2`` on both databases: one access
token minting readers and rotating them (so no reader ever locks) while it tries PINs, and one
trying voucher codes through hotspot starts, both from parallel clients; each is stopped within
its budget while valid guests elsewhere are still let in (docs/access.md, "Guessing budgets")."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keyledger.domain.callers.integrations import add_access_token, add_integration
from keyledger.domain.credentials.reservations import CONCEALED_COLLISION
from keyledger.domain.properties.models import Property
from keyledger.domain.properties.service import add_property
from keyledger.store import Store
from keyledger.store.schema import events, guess_counts
from tests.ops.harness import running_server
from tests.support import (
    MEWS_PATH,
    NEXUDUS_PATH,
    DatabaseFactory,
    record_figures,
    scaled,
    settings_for,
    token_parameters,
)

pytestmark = pytest.mark.slow

BUDGET = 40  # per access token (KEYLEDGER_GUESS_BUDGET_PER_CALLER)
PROPERTY_BUDGET = 60  # per property (KEYLEDGER_GUESS_BUDGET_PER_PROPERTY)
THREADS = 4
ATTEMPTS = scaled(BUDGET * 3)  # tried by the attacker, in all
IN_FLIGHT = scaled(200)  # checks sent at once, all in flight together
READER_FAILURES = 10  # refusals a reader takes before it locks (the default policy)


@dataclass
class Server:
    base: str
    store: Store

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=60)


@dataclass
class Token:
    prop: Property
    client_token: str
    access_token: str

    @property
    def bearer(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.access_token}"}

    @property
    def mews(self) -> dict[str, str]:
        return {
            "ClientToken": self.client_token,
            "AccessToken": self.access_token,
            "Client": "guess 1.0",
        }


@pytest.fixture(scope="module")
def server(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    url = databases.new_url()
    log = tmp_path_factory.mktemp("guessing") / "server.log"
    with running_server(
        url,
        log,
        guess_budget_per_caller=str(BUDGET),
        guess_budget_per_property=str(PROPERTY_BUDGET),
    ) as base:
        store = Store(settings_for(url))
        try:
            yield Server(base=base, store=store)
        finally:
            store.dispose()
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]


def new_token(store: Store, prop: Property | None = None, scopes: tuple[str, ...] = ()) -> Token:
    prop = prop or add_property(store, name=f"Guess {uuid.uuid4().hex[:6]}")
    integration = add_integration(store, name=f"guess-{uuid.uuid4().hex[:6]}")
    token = add_access_token(
        store, client_token=integration.secret, enterprise_ids=[prop.enterprise_id], scopes=scopes
    )
    return Token(prop, integration.secret, token.secret)


def put_room(http: httpx.Client, token: Token) -> str:
    room = str(uuid.uuid4())
    put = http.put(
        f"/api/v1/resources/{room}", json={"Kind": "Room", "Name": "R"}, headers=token.bearer
    )
    assert put.status_code == 200, put.text
    return room


def guest_pin(http: httpx.Client, token: Token, room: str) -> str:
    value = f"{uuid.uuid4().int % 10**8:08d}#"
    added = http.post(
        f"{MEWS_PATH}/add",
        json={
            **token.mews,
            "ResourceAccessTokenParameters": [
                token_parameters(
                    value=value,
                    start="2020-01-01T00:00:00Z",
                    end="2090-01-01T00:00:00Z",
                    ResourceId=room,
                )
            ],
        },
    )
    assert added.status_code == 200, added.text
    return value


def check(http: httpx.Client, token: Token, room: str, value: str) -> dict[str, Any]:
    answer = http.post(
        "/api/v1/access/check",
        json={"ResourceId": room, "Type": "PinCode", "Value": value},
        headers=token.bearer,
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def budget_events(store: Store, prop: Property) -> list[Any]:
    with store.read() as conn:
        return [
            tuple(row)
            for row in conn.execute(
                select(events.c.outcome, events.c.details).where(
                    events.c.kind == "guessing.throttled", events.c.property_id == prop.id
                )
            )
        ]


def counted(store: Store, subject: str) -> int:
    with store.read() as conn:
        found = conn.execute(
            select(func.sum(guess_counts.c.misses)).where(guess_counts.c.subject == subject)
        ).scalar_one_or_none()
    return int(found or 0)


def in_parallel(work: Any, threads: int) -> list[Any]:
    results: list[list[Any]] = [[] for _ in range(threads)]
    barrier = threading.Barrier(threads)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = work(index)

    runners = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    return [answer for part in results for answer in part]


def test_one_token_rotating_readers_is_stopped_within_its_budget(server: Server) -> None:
    attacker = new_token(server.store)
    controller = new_token(server.store, attacker.prop)  # the same hotel's door controller
    elsewhere = new_token(server.store)  # another hotel
    with server.client() as http:
        hotel_room, other_room = put_room(http, controller), put_room(http, elsewhere)
        hotel_pin = guest_pin(http, controller, hotel_room)
        other_pin = guest_pin(http, elsewhere, other_room)
        attacker_room = put_room(http, attacker)
        known = guest_pin(http, attacker, attacker_room)  # a PIN that exists

    def guess(index: int) -> list[dict[str, Any]]:
        answers = []
        with server.client() as http:
            room = put_room(http, attacker)
            for n in range(ATTEMPTS // THREADS):
                if n % 8 == 7:  # a new reader before this one could lock (10 refusals)
                    room = put_room(http, attacker)
                answers.append(check(http, attacker, room, f"{index:02d}{n:04d}#"))
        return answers

    answers = in_parallel(guess, THREADS)
    refused = [a for a in answers if a["Reason"] != "Throttled"]
    throttled = [a for a in answers if a["Reason"] == "Throttled"]
    # Every refusal the attacker saw counted; the checks in flight when the budget was used up
    # are decided again when written, so exactly the budget is answered on its merits.
    assert len(refused) == BUDGET, len(refused)
    assert counted(server.store, f"caller:token:{_connection(server, attacker)}") == len(refused)
    assert len(throttled) == len(answers) - len(refused)
    assert all(a["ThrottledUntil"] is not None for a in throttled)
    assert {a["Reason"] for a in refused} == {"UnknownCredential"}
    with server.client() as http:
        # The attacker learns nothing more, not even of a PIN that exists, at any reader.
        assert check(http, attacker, attacker_room, known)["Reason"] == "Throttled"
        assert check(http, attacker, put_room(http, attacker), known)["Reason"] == "Throttled"
        # Valid guests are let in: by the hotel's own controller, and at another hotel.
        assert check(http, controller, hotel_room, hotel_pin)["Granted"] is True
        assert check(http, elsewhere, other_room, other_pin)["Granted"] is True
    # The budget used up is one event, however many checks were refused afterwards.
    found = budget_events(server.store, attacker.prop)
    assert [(outcome, details["Budget"]) for outcome, details in found] == [("Throttled", "Caller")]
    assert budget_events(server.store, elsewhere.prop) == []
    record_figures(
        "test_one_token_rotating_readers_is_stopped_within_its_budget",
        attempts=len(answers),
        answered_before_throttled=len(refused),
        budget=BUDGET,
    )


def test_one_token_trying_voucher_codes_is_stopped_within_its_budget(server: Server) -> None:
    attacker = new_token(server.store)
    elsewhere = new_token(server.store)
    with server.client() as http:
        codes = {}
        for token in (attacker, elsewhere):
            email, password = _user(server, token.prop)
            code = f"OK{uuid.uuid4().hex[:8]}"
            created = http.post(
                NEXUDUS_PATH,
                json={
                    "BusinessId": token.prop.business_id,
                    "AccessCode": code,
                    "MinutesIncluded": 60,
                },
                auth=(email, password),
            )
            assert created.status_code == 200, created.text
            codes[token.prop.id] = code

    def start(http: httpx.Client, token: Token, code: str, device: str) -> dict[str, Any]:
        answer = http.post(
            "/api/v1/hotspot/sessions",
            json={"BusinessId": token.prop.business_id, "AccessCode": code, "DeviceId": device},
            headers=token.bearer,
        )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        return body

    def guess(index: int) -> list[dict[str, Any]]:
        with server.client() as http:
            return [
                start(http, attacker, f"G{index:02d}{n:05d}", f"dev-{index}")
                for n in range(ATTEMPTS // THREADS)
            ]

    answers = in_parallel(guess, THREADS)
    refused = [a for a in answers if a["Reason"] != "Throttled"]
    assert len(refused) == BUDGET, len(refused)  # a start is decided inside its write
    assert {a["Reason"] for a in refused} == {"UnknownCredential"}
    assert all(a["SessionId"] is None for a in answers)
    with server.client() as http:
        # A valid code answers Throttled to the attacker: no device slot, no confirmation.
        assert start(http, attacker, codes[attacker.prop.id], "x")["Reason"] == "Throttled"
        assert start(http, elsewhere, codes[elsewhere.prop.id], "y")["Granted"] is True
    found = budget_events(server.store, attacker.prop)
    assert [details["Budget"] for _, details in found] == ["Caller"]


def test_a_property_budget_stops_many_tokens_and_only_at_that_property(server: Server) -> None:
    tokens = [new_token(server.store)]
    tokens += [new_token(server.store, tokens[0].prop) for _ in range(2)]
    elsewhere = new_token(server.store)
    with server.client() as http:
        room, other_room = put_room(http, tokens[0]), put_room(http, elsewhere)
        other_pin = guest_pin(http, elsewhere, other_room)
        answers = []
        for index, token in enumerate(tokens):
            own = put_room(http, token)
            for n in range(BUDGET - 1):  # each token stays within its own budget
                if n % 8 == 7:
                    own = put_room(http, token)
                answers.append(check(http, token, own, f"9{index}{n:04d}#")["Reason"])
        # 3 x 39 = 117 misses passed the property's budget (60) after the second token's 21st.
        assert answers.count("UnknownCredential") == PROPERTY_BUDGET
        assert answers.count("Throttled") == 3 * (BUDGET - 1) - PROPERTY_BUDGET
        fresh = new_token(server.store, tokens[0].prop)
        assert check(http, fresh, room, "12345#")["Reason"] == "Throttled"
        assert check(http, elsewhere, other_room, other_pin)["Granted"] is True
    found = budget_events(server.store, tokens[0].prop)
    assert [details["Budget"] for _, details in found] == ["Property"]


def all_at_once(server: Server, token: Token, rooms: list[str], count: int) -> list[Any]:
    """``count`` door checks by ``token`` (unknown PINs, round the ``rooms``), all sent at once
    from one event loop: every connection is open and every request waits on one signal, so
    the server's two workers receive them together and decide many in one loop turn."""

    async def run() -> list[Any]:
        go = asyncio.Event()
        limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
        async with httpx.AsyncClient(base_url=server.base, timeout=120, limits=limits) as http:

            async def one(n: int) -> Any:
                await go.wait()
                answer = await http.post(
                    "/api/v1/access/check",
                    json={
                        "ResourceId": rooms[n % len(rooms)],
                        "Type": "PinCode",
                        "Value": f"7{n:06d}#",
                    },
                    headers=token.bearer,
                )
                assert answer.status_code == 200, answer.text
                return answer.json()

            tasks = [asyncio.create_task(one(n)) for n in range(count)]
            await asyncio.sleep(0.2)  # every task is waiting on the signal
            go.set()
            return list(await asyncio.gather(*tasks))

    return asyncio.run(run())


def test_checks_in_flight_at_one_reader_stop_at_its_lock(server: Server) -> None:
    attacker = new_token(server.store)
    controller = new_token(server.store, attacker.prop)
    with server.client() as http:
        room = put_room(http, attacker)
        hotel_room = put_room(http, controller)
        hotel_pin = guest_pin(http, controller, hotel_room)
    answers = all_at_once(server, attacker, [room], IN_FLIGHT)
    refused = [a for a in answers if a["Reason"] != "Throttled"]
    # Each check is re-decided under the reader's lock when its group commits: exactly the
    # refusal that passes the limit locks the reader, and none after it is answered on merit.
    assert len(refused) == READER_FAILURES + 1, len(refused)
    assert {a["Reason"] for a in refused} == {"UnknownCredential"}
    assert all(a["CredentialId"] is None for a in answers)
    assert counted(server.store, f"caller:token:{_connection(server, attacker)}") == len(refused)
    with server.client() as http:
        assert check(http, controller, hotel_room, hotel_pin)["Granted"] is True
    record_figures(
        "test_checks_in_flight_at_one_reader_stop_at_its_lock",
        in_flight=len(answers),
        answered_before_throttled=len(refused),
    )


def test_checks_in_flight_across_readers_stop_at_the_token_budget(server: Server) -> None:
    attacker = new_token(server.store)
    controller = new_token(server.store, attacker.prop)  # the same hotel's door controller
    with server.client() as http:
        # Few checks per reader (no reader locks): only the budget can stop them.
        rooms = [put_room(http, attacker) for _ in range(IN_FLIGHT // (READER_FAILURES // 2))]
        hotel_room = put_room(http, controller)
        hotel_pin = guest_pin(http, controller, hotel_room)
    answers = all_at_once(server, attacker, rooms, IN_FLIGHT)
    refused = [a for a in answers if a["Reason"] != "Throttled"]
    # Re-decided under the budget's lock: exactly the budget is answered on merit.
    assert len(refused) == BUDGET, len(refused)
    assert {a["Reason"] for a in refused} == {"UnknownCredential"}
    # One token counts toward its property only within its own budget, so the property's
    # budget (PROPERTY_BUDGET > BUDGET) is not used up and the hotel's guests still get in.
    assert counted(server.store, f"caller:token:{_connection(server, attacker)}") == BUDGET
    assert counted(server.store, f"property:{attacker.prop.id}") == BUDGET
    with server.client() as http:
        assert check(http, controller, hotel_room, hotel_pin)["Granted"] is True
    found = budget_events(server.store, attacker.prop)
    assert [details["Budget"] for _, details in found] == ["Caller"]
    record_figures(
        "test_checks_in_flight_across_readers_stop_at_the_token_budget",
        in_flight=len(answers),
        answered_before_throttled=len(refused),
        budget=BUDGET,
    )


def test_a_write_only_token_learns_no_pin_from_the_collision_rule(server: Server) -> None:
    """A token that may write but not read credentials tries 1,000 values in one add, one of
    them a live guest PIN: the refusal names neither the item nor the other token, every value
    counts against its own guessing budget (not the property's), and its next add carrying
    values answers 429 without being evaluated. A token that may read values anyway still gets
    the detailed refusal, and pays nothing."""
    controller = new_token(server.store)
    writer = new_token(server.store, controller.prop, scopes=("credentials:write",))
    batch = 1000  # the Mews batch limit
    with server.client() as http:
        room = put_room(http, controller)
        live = guest_pin(http, controller, room)
        values = [f"{n:08d}#" for n in range(batch - 1)]
        values.insert(931, live)

        def add(token: Token, tried: list[str]) -> httpx.Response:
            return http.post(
                f"{MEWS_PATH}/add",
                json={
                    **token.mews,
                    "ResourceAccessTokenParameters": [
                        token_parameters(
                            value=value,
                            start="2030-01-01T00:00:00Z",
                            end="2030-01-05T00:00:00Z",
                            ResourceId=room,
                        )
                        for value in tried
                    ],
                },
            )

        refused = add(writer, values)
        assert refused.status_code == 403, refused.text
        body = refused.json()
        assert body["Message"] == CONCEALED_COLLISION
        assert "931" not in refused.text and "Item" not in refused.text
        assert body["RequestId"] == refused.headers["Request-Id"]
        own = f"caller:token:{_connection(server, writer)}"
        assert counted(server.store, own) == batch
        assert counted(server.store, f"property:{controller.prop.id}") == 0
        # The budget is used up: the next add carrying values is not evaluated.
        throttled = add(writer, ["99999999#"])
        assert throttled.status_code == 429, throttled.text
        assert int(throttled.headers["Retry-After"]) >= 1
        assert set(throttled.json()) == {"Message", "RequestId", "Details"}
        assert counted(server.store, own) == batch
        # The full token sees which item collided with which token, and pays nothing.
        detailed = add(controller, values)
        assert detailed.status_code == 403, detailed.text
        assert detailed.json()["Message"].startswith(
            "Item 931: this PinCode value collides with token "
        )
        assert counted(server.store, f"caller:token:{_connection(server, controller)}") == 0
        # Nothing of the refused batches was kept; the hotel's guest still gets in.
        assert check(http, controller, room, live)["Granted"] is True
    found = budget_events(server.store, controller.prop)
    assert [(details["Budget"], details["Misses"]) for _, details in found] == [("Caller", batch)]


def _connection(server: Server, token: Token) -> int:
    from keyledger.domain.callers.integrations import authenticate_access_token

    caller = authenticate_access_token(server.store, access_token=token.access_token)
    return caller.connection_id


def _user(server: Server, prop: Property) -> tuple[str, str]:
    from keyledger.domain.callers.users import add_user

    email, password = f"user-{uuid.uuid4().hex[:8]}@example.com", "a long password"
    add_user(
        server.store,
        email=email,
        password=password,
        business_ids=[prop.business_id],
        roles=("AccessToken-Create",),
    )
    return email, password
