"""Property: Mews getAll's CollidingUtc filter returns exactly the tokens a brute-force model
says overlap the interval (an instant: valid at it), on a real SQLite store, through both query
plans (the time index, or creation order for a window that matches many tokens)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyledger.callers.models import Scope
from keyledger.credentials import repository
from keyledger.credentials.models import (
    ReservationTokenQuery,
    TimeInterval,
)
from keyledger.credentials.service import list_reservation_tokens
from keyledger.properties.service import add_property
from keyledger.store import Store
from tests.support import add_pins

BASE = datetime(2032, 6, 1, tzinfo=UTC)
hours = st.integers(0, 72)


@settings(
    max_examples=40,
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
