"""A getAll page reads the same tokens whichever plan SQLite takes: the time index then a sort
(a narrow window) or creation order, stopping after Count (a window covering most tokens)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from keyledger.domain.credentials import reservation_repository as repository
from keyledger.domain.credentials.models import (
    ReservationTokenQuery,
    TimeInterval,
)
from keyledger.domain.credentials.reservations import list_reservation_tokens
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.store import Store
from tests.support import add_pins


def _pages(store: Store, scope: Scope, query: ReservationTokenQuery) -> list[list[uuid.UUID]]:
    pages: list[list[uuid.UUID]] = []
    cursor = None
    while True:
        page = list_reservation_tokens(
            store,
            scope=scope,
            query=ReservationTokenQuery(
                colliding=query.colliding, updated=query.updated, count=3, cursor=cursor
            ),
        )
        if not page.credentials:
            return pages
        pages.append([c.uid for c in page.credentials])
        cursor = page.cursor


def test_dense_and_sparse_plans_give_the_same_pages(
    sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prop = add_property(sqlite_store, name="Plans")
    scope = Scope((prop,))
    start = datetime(2031, 1, 1, tzinfo=UTC)
    for _ in range(4):  # four creation instants, so the order is by time, then by id
        add_pins(
            sqlite_store,
            scope,
            [(start + timedelta(days=n), start + timedelta(days=n + 2)) for n in range(5)],
        )
    now = datetime.now(UTC)
    queries = [
        ReservationTokenQuery(
            updated=TimeInterval(now - timedelta(days=1), now + timedelta(days=1))
        ),
        ReservationTokenQuery(
            colliding=TimeInterval(start + timedelta(days=2), start + timedelta(days=3))
        ),
    ]
    sparse = [_pages(sqlite_store, scope, query) for query in queries]
    monkeypatch.setattr(repository, "DENSE_RANGE", 2)
    dense = [_pages(sqlite_store, scope, query) for query in queries]
    assert dense == sparse
    assert sum(len(page) for page in sparse[0]) == 20
    assert sum(len(page) for page in sparse[1]) == 8  # validity [n, n+2) overlaps [2, 3): n = 1, 2
    assert len({uid for page in sparse[0] for uid in page}) == 20
