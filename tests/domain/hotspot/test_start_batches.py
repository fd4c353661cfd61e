"""A group's hotspot starts decided together (``hotspot.start_sessions``, a group writer batch)
give what each start alone, one after the other, gives: the same reasons, the same sessions
(a device twice in a group gets its session back; UserLimit holds within the group), the same
budgets (a miss mid-group throttles the later starts of its guesser), the same event log in the
same order. Both databases."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import func, select, update

from keyledger.domain.credentials import vouchers
from keyledger.domain.credentials.models import VoucherFields
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.hotspot import service as hotspot
from keyledger.domain.hotspot.models import SessionDecision, SessionReason
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.properties.service import add_property
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import OutOfScope
from keyledger.store import Store
from keyledger.store.schema import credentials, events, guess_counts, hotspot_sessions
from tests.support import DatabaseFactory, settings_for

ACTOR = Actor.system()
BUDGET = GuessBudget(per_caller=3, per_property=5, window_seconds=86_400)
CODES = ["ONE", "TWO", " two ", "OLD", "LATER", "nope1", "nope2"]
DEVICES = ["d1", "d2", "d3", "d4"]
CALLERS = ["c1", "c2"]


@pytest.fixture
def stores(databases: DatabaseFactory) -> Iterator[tuple[Store, Store]]:
    """Two fresh databases of one kind: one decides in batches, the other start by start."""
    pair = (Store(settings_for(databases.new_url())), Store(settings_for(databases.new_url())))
    yield pair
    for store in pair:
        store.dispose()


def _space(store: Store) -> Property:
    prop = add_property(store, name="Hub")
    now = utc_now()
    for fields in (
        VoucherFields(access_code="ONE", minutes_included=60, user_limit=1),
        VoucherFields(access_code="TWO", minutes_included=60, user_limit=2),
        VoucherFields(access_code="OLD", minutes_included=60, valid_to=now - timedelta(days=1)),
        VoucherFields(access_code="LATER", minutes_included=60, valid_from=now + timedelta(days=1)),
    ):
        vouchers.create_voucher(store, target=prop, actor=ACTOR, fields=fields)
    return prop


def _starts(prop: Property, picks: list[tuple[str, str, str]]) -> list[hotspot.SessionStart]:
    return [
        hotspot.SessionStart(
            scope=Scope((prop,)),
            actor=ACTOR,
            business_id=prop.business_id,
            access_code=code,
            device_id=device,
            idle_seconds=3600,
            caller=caller,
            budget=BUDGET,
        )
        for code, device, caller in picks
    ]


def _shape(decisions: list[Any]) -> list[tuple[str, int | None, int]]:
    """Decisions without their random ids: the reason, which session (numbered as first seen),
    seconds left."""
    numbered: dict[UUID, int] = {}
    shape = []
    for d in decisions:
        assert isinstance(d, SessionDecision)
        number = None
        if d.session_uid is not None:
            number = numbered.setdefault(d.session_uid, len(numbered))
        shape.append((d.reason.value, number, d.seconds_left))
    return shape


def _log(store: Store) -> tuple[list[tuple[str, str | None, str | None]], list[Any], int]:
    """The events in order (kind, outcome, device), the guessing counts, open sessions."""
    with store.read() as conn:
        log = [
            (str(kind), outcome, (details or {}).get("DeviceId"))
            for kind, outcome, details in conn.execute(
                select(events.c.kind, events.c.outcome, events.c.details)
                .where(events.c.kind.like("hotspot.%") | events.c.kind.like("guessing.%"))
                .order_by(events.c.id)
            )
        ]
        counts = sorted(
            (subject, misses)
            for subject, misses in conn.execute(
                select(guess_counts.c.subject, guess_counts.c.misses)
            )
        )
        open_sessions = conn.execute(
            select(func.count())
            .select_from(hotspot_sessions)
            .where(hotspot_sessions.c.ended_utc.is_(None))
        ).scalar_one()
    counts = [(subject.split(":", 1)[0], misses) for subject, misses in counts]
    return log, counts, open_sessions


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_a_batch_decides_as_its_starts_one_after_the_other(
    stores: tuple[Store, Store], seed: int
) -> None:
    rng = random.Random(seed)
    full = [("ONE", "d1", "c1"), ("ONE", "d2", "c2")]  # the second finds the voucher full
    picks = full + [
        (rng.choice(CODES), rng.choice(DEVICES), rng.choice(CALLERS)) for _ in range(40)
    ]
    batched, alone = stores
    batched_prop, alone_prop = _space(batched), _space(alone)

    with batched.write() as conn:
        together = hotspot.start_sessions(conn, _starts(batched_prop, picks))
    one_by_one = []
    for start in _starts(alone_prop, picks):
        with alone.write() as conn:
            one_by_one.extend(hotspot.start_sessions(conn, [start]))

    assert _shape(together) == _shape(one_by_one)
    assert _log(batched) == _log(alone)
    reasons = {d.reason for d in together if isinstance(d, SessionDecision)}
    # the seeds reach every path: grants, a full voucher, misses, throttling
    assert {SessionReason.GRANTED, SessionReason.TOO_MANY_DEVICES, SessionReason.THROTTLED} <= (
        reasons
    )


def test_a_device_twice_in_a_batch_gets_one_session_and_the_user_limit_holds(
    stores: tuple[Store, Store],
) -> None:
    store = stores[0]
    prop = _space(store)
    picks = [("ONE", "d1", "c1"), ("one", "d1", "c1"), ("ONE", "d2", "c1"), ("TWO", "d3", "c2")]
    with store.write() as conn:
        first, again, other, two = hotspot.start_sessions(conn, _starts(prop, picks))
    assert isinstance(first, SessionDecision) and isinstance(again, SessionDecision)
    assert first.reason is again.reason is SessionReason.GRANTED
    assert first.session_uid == again.session_uid
    assert isinstance(other, SessionDecision)
    assert other.reason is SessionReason.TOO_MANY_DEVICES
    assert isinstance(two, SessionDecision) and two.granted
    with store.read() as conn:
        rows = conn.execute(
            select(hotspot_sessions.c.uid, hotspot_sessions.c.device_id).order_by(
                hotspot_sessions.c.id
            )
        ).all()
    assert [(uid, device) for uid, device in rows] == [
        (first.session_uid, "d1"),
        (two.session_uid, "d3"),
    ]


def test_an_idle_session_ends_and_its_device_starts_anew_in_a_batch(
    stores: tuple[Store, Store],
) -> None:
    store = stores[0]
    prop = _space(store)
    with store.write() as conn:
        (old,) = hotspot.start_sessions(conn, _starts(prop, [("ONE", "d1", "c1")]))
    assert isinstance(old, SessionDecision) and old.granted
    with store.write() as conn:  # the session last reported two hours ago: idle
        conn.execute(
            update(hotspot_sessions).values(last_report_utc=utc_now() - timedelta(hours=2))
        )
    picks = [("TWO", "d3", "c1"), ("ONE", "d2", "c1"), ("ONE", "d2", "c1")]
    with store.write() as conn:
        two, new, again = hotspot.start_sessions(conn, _starts(prop, picks))
    assert isinstance(new, SessionDecision) and isinstance(again, SessionDecision)
    assert new.granted and new.session_uid != old.session_uid
    assert again.session_uid == new.session_uid
    assert isinstance(two, SessionDecision) and two.granted
    with store.read() as conn:
        rows = conn.execute(
            select(hotspot_sessions.c.uid, hotspot_sessions.c.ended_utc.is_not(None)).order_by(
                hotspot_sessions.c.id
            )
        ).all()
    assert [(uid, ended) for uid, ended in rows] == [
        (old.session_uid, True),
        (two.session_uid, False),
        (new.session_uid, False),
    ]


def test_a_start_outside_its_scope_gets_out_of_scope_and_the_others_are_decided(
    stores: tuple[Store, Store],
) -> None:
    store = stores[0]
    prop = _space(store)
    starts = _starts(prop, [("ONE", "d1", "c1"), ("TWO", "d2", "c1")])
    stranger = hotspot.SessionStart(
        scope=Scope((prop,)),
        actor=ACTOR,
        business_id=prop.business_id + 1,
        access_code="ONE",
        device_id="d9",
        idle_seconds=3600,
        caller="c1",
        budget=BUDGET,
    )
    with store.write() as conn:
        first, refused, last = hotspot.start_sessions(conn, [starts[0], stranger, starts[1]])
    assert isinstance(refused, OutOfScope)
    assert isinstance(first, SessionDecision) and first.granted
    assert isinstance(last, SessionDecision) and last.granted
    log, counts, open_sessions = _log(store)
    assert [device for _, _, device in log] == ["d1", "d2"]
    assert counts == []
    assert open_sessions == 2


def test_the_same_codes_devices_and_callers_in_two_properties_stay_apart_in_one_batch(
    stores: tuple[Store, Store],
) -> None:
    """Two properties with the same voucher codes, starts from the same devices and callers,
    interleaved in one batch: each start gets its own property's voucher and sessions (UserLimit
    counted per voucher), as the same starts one by one do."""
    batched, alone = stores
    picks = [("ONE", "d1", "c1"), ("ONE", "d2", "c1"), ("TWO", "d1", "c2"), ("nope1", "d3", "c1")]
    batched_props = [_space(batched), add_property(batched, name="Annex")]
    _fill(batched, batched_props[1])
    alone_props = [_space(alone), add_property(alone, name="Annex")]
    _fill(alone, alone_props[1])

    def interleaved(props: list[Property]) -> list[hotspot.SessionStart]:
        return [
            start
            for pick in picks
            for start in (*_starts(props[0], [pick]), *_starts(props[1], [pick]))
        ]

    with batched.write() as conn:
        together = hotspot.start_sessions(conn, interleaved(batched_props))
    one_by_one = []
    for start in interleaved(alone_props):
        with alone.write() as conn:
            one_by_one.extend(hotspot.start_sessions(conn, [start]))

    assert _shape(together) == _shape(one_by_one)
    assert [reason for reason, _, _ in _shape(together)] == [
        "Granted",
        "Granted",  # ONE d1 in each property
        "TooManyDevices",
        "TooManyDevices",  # ONE d2: each property's ONE is full
        "Granted",
        "Granted",  # TWO d1
        "UnknownCredential",
        "UnknownCredential",
    ]
    with batched.read() as conn:
        owners = dict(conn.execute(select(credentials.c.uid, credentials.c.property_id)).all())
    for index, decision in enumerate(together):
        assert isinstance(decision, SessionDecision)
        if decision.credential_uid is not None:
            assert owners[decision.credential_uid] == batched_props[index % 2].id
    assert _log(batched) == _log(alone)


def _fill(store: Store, prop: Property) -> None:
    """The same codes as ``_space``'s in another property."""
    for code, limit in (("ONE", 1), ("TWO", 2)):
        vouchers.create_voucher(
            store,
            target=prop,
            actor=ACTOR,
            fields=VoucherFields(access_code=code, minutes_included=60, user_limit=limit),
        )
