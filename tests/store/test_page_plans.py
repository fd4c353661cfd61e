"""A getAll page reads the same tokens whichever plan SQLite takes: the time index then a sort
(a narrow window) or creation order, stopping after Count (a window covering most tokens)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from keyledger.callers.models import Actor, Scope
from keyledger.credentials import repository
from keyledger.credentials.models import (
    Permissions,
    ReservationTokenDraft,
    ReservationTokenQuery,
    TimeInterval,
    TokenType,
)
from keyledger.credentials.service import add_reservation_tokens, list_reservation_tokens
from keyledger.properties.service import add_property
from keyledger.settings import Settings
from keyledger.store import Store
from tests.support import DatabaseFactory


@pytest.fixture
def store(sqlite_databases: DatabaseFactory) -> Iterator[Store]:
    store = Store(Settings(database_url=sqlite_databases.new_url()))
    yield store
    store.dispose()


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
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    prop = add_property(store, name="Plans")
    scope = Scope((prop,))
    start = datetime(2031, 1, 1, tzinfo=UTC)
    for batch in range(4):  # four creation instants, so the order is by time, then by id
        add_reservation_tokens(
            store,
            scope=scope,
            actor=Actor.system(),
            drafts=[
                ReservationTokenDraft(
                    service_order_id=uuid.uuid4(),
                    token_type=TokenType.PIN_CODE,
                    value=f"{batch}{n}#",
                    valid_from=start + timedelta(days=n),
                    valid_to=start + timedelta(days=n + 2),
                    permissions=Permissions(room=True),
                )
                for n in range(5)
            ],
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
    sparse = [_pages(store, scope, query) for query in queries]
    monkeypatch.setattr(repository, "DENSE_RANGE", 2)
    dense = [_pages(store, scope, query) for query in queries]
    assert dense == sparse
    assert sum(len(page) for page in sparse[0]) == 20
    assert sum(len(page) for page in sparse[1]) == 8  # validity [n, n+2) overlaps [2, 3): n = 1, 2
    assert len({uid for page in sparse[0] for uid in page}) == 20
