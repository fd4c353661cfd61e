"""Door decisions (domain/access/service.py) on a real SQLite store: ``evaluate``'s checks in
their order, the refusal reported when several tokens share a value (``REFUSAL_ORDER``), and
``check_door``, the entry point the API serves, with its record and the reader's lock."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from keyledger.domain.access.models import REFUSAL_ORDER, Decision, DoorCheck, ReaderPolicy, Reason
from keyledger.domain.access.service import check_door, evaluate
from keyledger.domain.credentials.models import Permissions
from keyledger.domain.events.models import Actor, EventKind, EventQuery
from keyledger.domain.events.service import list_events
from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.domain.resources import service as resources
from keyledger.domain.resources.models import Resource
from keyledger.kit.clock import utc_now
from keyledger.store import Store
from keyledger.store.writer import GroupWriter
from tests.support import Building, add_building, add_door_tokens, door_token

NOW = utc_now().replace(microsecond=0)
HOUR = timedelta(hours=1)


@pytest.fixture
def building(sqlite_store: Store) -> Building:
    return add_building(sqlite_store, add_property(sqlite_store, name="Door rules"))


def check(
    store: Store,
    building: Building,
    value: str,
    *,
    reader: UUID | None = None,
    at: datetime | None = None,
    policy: ReaderPolicy | None = None,
) -> Decision:
    return asyncio.run(
        check_door(
            store,
            GroupWriter(store),
            scope=Scope((building.property,)),
            actor=Actor.system(),
            caller="test",
            reader_uid=reader or building.room_1,
            token_type="PinCode",
            value=value,
            at=at or NOW,
            policy=policy or ReaderPolicy(),
            budget=GuessBudget(),
        )
    )


def test_evaluate_checks_deletion_then_validity_then_the_flag_then_the_reach(
    sqlite_store: Store, building: Building
) -> None:
    (token,) = add_door_tokens(
        sqlite_store, building.property, [door_token("1#", NOW - HOUR, NOW + HOUR)]
    )
    room_1, room_2, floor = (
        resources.find_resource(sqlite_store, scope=Scope((building.property,)), uid=uid)
        for uid in (building.room_1, building.room_2, building.floor)
    )
    reached = {building.room_1, building.floor, building.building}

    def reason(*, reader: Resource = room_1, at: datetime = NOW, **changes: Any) -> Reason:
        tried = replace(token, **changes)
        return evaluate(tried, reader, reached, DoorCheck(reader.uid, "PinCode", "1#", at))

    assert reason() is Reason.GRANTED
    assert reason(at=NOW - HOUR) is Reason.GRANTED  # valid from: included
    assert reason(at=NOW - HOUR - timedelta(seconds=1)) is Reason.NOT_YET_VALID
    assert reason(at=NOW + HOUR) is Reason.EXPIRED  # valid to: excluded
    assert reason(reader=floor) is Reason.NO_PERMISSION  # no floor flag
    assert reason(reader=room_2) is Reason.NO_PERMISSION  # a room outside the reach
    assert reason(permissions=Permissions(floor=True)) is Reason.NO_PERMISSION
    # Deletion first, then validity, then the flag: each masks those after it.
    assert reason(deleted_utc=NOW, at=NOW + 2 * HOUR) is Reason.DELETED
    assert reason(at=NOW + 2 * HOUR, reader=room_2) is Reason.EXPIRED
    assert reason(at=NOW - 2 * HOUR, reader=floor) is Reason.NOT_YET_VALID
    # Without a resource (reached None) the flag alone decides: any room of the property.
    assert evaluate(token, room_2, None, DoorCheck(room_2.uid, "PinCode", "1#", NOW)) is (
        Reason.GRANTED
    )


def test_the_refusal_order() -> None:
    assert REFUSAL_ORDER == (
        Reason.NO_PERMISSION,
        Reason.NOT_YET_VALID,
        Reason.EXPIRED,
        Reason.DELETED,
    )


def test_of_several_tokens_a_grant_wins_then_the_most_telling_refusal(
    sqlite_store: Store, building: Building
) -> None:
    # One value, tokens whose validity never overlaps (so the collision rule lets them be).
    add_door_tokens(
        sqlite_store,
        building.property,
        [
            door_token("7#", NOW - 3 * HOUR, NOW - 2 * HOUR, resource_id=building.room_1),
            door_token("7#", NOW + 2 * HOUR, NOW + 3 * HOUR, resource_id=building.room_1),
        ],
    )
    assert check(sqlite_store, building, "7#").reason is Reason.NOT_YET_VALID  # over Expired
    (elsewhere,) = add_door_tokens(
        sqlite_store,
        building.property,
        [door_token("7#", NOW - HOUR, NOW + HOUR, resource_id=building.room_2)],
    )
    decision = check(sqlite_store, building, "7#")
    assert (decision.reason, decision.credential_uid) == (Reason.NO_PERMISSION, elsewhere.uid)
    granted = check(sqlite_store, building, "7#", reader=building.room_2)
    assert (granted.granted, granted.reason, granted.credential_uid) == (
        True,
        Reason.GRANTED,
        elsewhere.uid,
    )
    assert check(sqlite_store, building, "8#").reason is Reason.UNKNOWN_CREDENTIAL


def test_check_door_records_each_check_and_locks_the_reader_past_the_limit(
    sqlite_store: Store, building: Building
) -> None:
    policy = ReaderPolicy(failures=2, window_seconds=300, cooldown_seconds=300)
    (token,) = add_door_tokens(
        sqlite_store,
        building.property,
        [door_token("5#", NOW - HOUR, NOW + HOUR, resource_id=building.bed_a)],
    )
    # A room token's flag does not open the bed's own reader; the room above it, yes.
    assert check(sqlite_store, building, "5#", reader=building.bed_a).reason is (
        Reason.NO_PERMISSION
    )
    assert check(sqlite_store, building, "5#", reader=building.room_1, policy=policy).granted
    refused = [
        check(sqlite_store, building, "0#", policy=policy).reason for _ in range(3)
    ]  # the third passes "more than 2"
    assert refused == [Reason.UNKNOWN_CREDENTIAL] * 3
    locked = check(sqlite_store, building, "5#", policy=policy)
    assert (locked.granted, locked.reason, locked.credential_uid) == (False, Reason.THROTTLED, None)
    assert locked.throttled_until is not None
    assert utc_now() < locked.throttled_until <= utc_now() + timedelta(seconds=300)
    # Another reader of the property is not locked.
    assert check(sqlite_store, building, "0#", reader=building.room_2).reason is (
        Reason.UNKNOWN_CREDENTIAL
    )
    events = list_events(
        sqlite_store, property_ids=[building.property.id], query=EventQuery(limit=100)
    )
    kinds = [event.kind for event in events if event.resource_uid in (building.room_1,)]
    assert kinds.count(EventKind.ACCESS_CHECKED) == 5
    assert kinds.count(EventKind.READER_THROTTLED) == 1
    grant = [e for e in events if e.credential_uid == token.uid and e.outcome == "Granted"]
    assert len(grant) == 1
    assert grant[0].details == {"Type": "PinCode", "At": NOW.strftime("%Y-%m-%dT%H:%M:%SZ")}
