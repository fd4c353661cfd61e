"""Properties: Mews getAll's CollidingUtc and UpdatedUtc filters return exactly the tokens a
brute-force model picks (CollidingUtc: validity overlaps the interval, or an instant it is valid
at; UpdatedUtc: last change within [start, end), or at the instant), with ActivityStates, on a
real SQLite store, through both query plans (the time index, or creation order for a window that
matches many tokens)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import bindparam, update

from keyledger.domain.credentials import reservation_repository as repository
from keyledger.domain.credentials.models import (
    ActivityState,
    ReservationTokenQuery,
    TimeInterval,
)
from keyledger.domain.credentials.reservations import list_reservation_tokens
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.store import Store
from keyledger.store.schema import credentials
from tests.support import add_pins, scaled

BASE = datetime(2032, 6, 1, tzinfo=UTC)
hours = st.integers(0, 72)


@settings(
    max_examples=scaled(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    windows=st.lists(st.tuples(hours, st.integers(1, 48)), min_size=1, max_size=15),
    query=st.tuples(hours, st.integers(0, 30)),
    dense=st.booleans(),
)
def test_colliding_filter_matches_the_brute_force_model(
    sqlite_store: Store,
    windows: list[tuple[int, int]],
    query: tuple[int, int],
    dense: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prop = add_property(sqlite_store, name=f"Filters {uuid.uuid4().hex[:8]}")
    scope = Scope((prop,))
    created = add_pins(
        sqlite_store,
        scope,
        [
            (BASE + timedelta(hours=start), BASE + timedelta(hours=start + length))
            for start, length in windows
        ],
    )
    start, length = query
    interval = TimeInterval(BASE + timedelta(hours=start), BASE + timedelta(hours=start + length))

    def overlaps(valid_from: datetime, valid_to: datetime) -> bool:
        if interval.is_instant:
            return valid_from <= interval.start < valid_to
        return valid_from < interval.end and interval.start < valid_to

    expected = {
        c.uid for c in created if c.valid_from and c.valid_to and overlaps(c.valid_from, c.valid_to)
    }
    with monkeypatch.context() as patch:
        if dense:
            patch.setattr(repository, "DENSE_RANGE", 1)
        page = list_reservation_tokens(
            sqlite_store, scope=scope, query=ReservationTokenQuery(colliding=interval, count=1000)
        )
    assert {c.uid for c in page.credentials} == expected
    assert len(page.credentials) == len(expected)


STATES = {
    "both": frozenset(ActivityState),
    "active": frozenset({ActivityState.ACTIVE}),
    "deleted": frozenset({ActivityState.DELETED}),
}


@settings(
    max_examples=scaled(40),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    tokens=st.lists(st.tuples(hours, st.booleans()), min_size=1, max_size=15),
    query=st.tuples(hours, st.integers(0, 30), st.sampled_from(sorted(STATES))),
    dense=st.booleans(),
)
def test_updated_filter_matches_the_brute_force_model(
    sqlite_store: Store,
    tokens: list[tuple[int, bool]],
    query: tuple[int, int, str],
    dense: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    prop = add_property(sqlite_store, name=f"Updated {uuid.uuid4().hex[:8]}")
    scope = Scope((prop,))
    window = (BASE, BASE + timedelta(days=1))
    created = add_pins(sqlite_store, scope, [window] * len(tokens))
    # Each token's last change (and deletion) at a chosen hour.
    changes = {
        c.uid: (BASE + timedelta(hours=hour), deleted)
        for c, (hour, deleted) in zip(created, tokens, strict=True)
    }
    with sqlite_store.write() as conn:
        conn.execute(
            update(credentials)
            .where(credentials.c.uid == bindparam("key"))
            .values(updated_utc=bindparam("at"), deleted_utc=bindparam("deleted")),
            [
                {"key": uid, "at": at, "deleted": at if deleted else None}
                for uid, (at, deleted) in changes.items()
            ],
        )
    start, length, states = query
    interval = TimeInterval(BASE + timedelta(hours=start), BASE + timedelta(hours=start + length))

    def within(at: datetime) -> bool:
        if interval.is_instant:
            return at == interval.start
        return interval.start <= at < interval.end

    wanted = STATES[states]
    expected = {
        uid
        for uid, (at, deleted) in changes.items()
        if within(at) and (ActivityState.DELETED if deleted else ActivityState.ACTIVE) in wanted
    }
    with monkeypatch.context() as patch:
        if dense:
            patch.setattr(repository, "DENSE_RANGE", 1)
        page = list_reservation_tokens(
            sqlite_store,
            scope=scope,
            query=ReservationTokenQuery(updated=interval, states=wanted, count=1000),
        )
    assert {c.uid for c in page.credentials} == expected
    assert len(page.credentials) == len(expected)
    for credential in page.credentials:
        assert credential.updated_utc == changes[credential.uid][0]
