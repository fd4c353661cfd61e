"""Property: Mews getAll pages, with adds, deletes and updates interleaved at random between
pages, show every token that lived through the whole traversal exactly once, and no token twice
(a real SQLite store, the credential core)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyledger.domain.credentials.models import (
    ReservationTokenChange,
    ReservationTokenQuery,
    TimeInterval,
)
from keyledger.domain.credentials.reservations import (
    delete_reservation_tokens,
    list_reservation_tokens,
    update_reservation_tokens,
)
from keyledger.domain.events.models import Actor
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.store import Store
from tests.support import add_pins, scaled

START = datetime(2031, 3, 1, tzinfo=UTC)


def _add(store: Store, scope: Scope, count: int) -> list[uuid.UUID]:
    return [c.uid for c in add_pins(store, scope, [(START, START + timedelta(days=2))] * count)]


# Each operation names its targets by position up front: drawing them during the traversal would
# make how much hypothesis draws depend on the random uuids (it reports that as flaky data).
operations = st.lists(
    st.tuples(
        st.sampled_from(["add", "delete", "update", "none"]),
        st.lists(st.integers(0, 10**6), min_size=1, max_size=4),
    ),
    min_size=1,
    max_size=12,
)


def _pick(live: set[uuid.UUID], positions: list[int]) -> list[uuid.UUID]:
    ordered = sorted(live)
    return list(dict.fromkeys(ordered[p % len(ordered)] for p in positions))


@settings(
    max_examples=scaled(30),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    initial=st.integers(0, 25),
    page_size=st.integers(1, 7),
    between_pages=operations,
)
def test_every_token_living_through_a_traversal_is_seen_once(
    sqlite_store: Store,
    initial: int,
    page_size: int,
    between_pages: list[tuple[str, list[int]]],
) -> None:
    prop = add_property(sqlite_store, name=f"Paging {uuid.uuid4().hex[:8]}")
    scope = Scope((prop,))
    live = set(_add(sqlite_store, scope, initial))
    touched: set[uuid.UUID] = set()  # deleted during the traversal
    window = TimeInterval(
        datetime.now(UTC) - timedelta(days=1), datetime.now(UTC) + timedelta(days=1)
    )
    seen: list[uuid.UUID] = []
    cursor = None
    step = 0
    at_start = set(live)
    while True:
        page = list_reservation_tokens(
            sqlite_store,
            scope=scope,
            query=ReservationTokenQuery(updated=window, count=page_size, cursor=cursor),
        )
        if not page.credentials:
            break
        seen += [c.uid for c in page.credentials]
        cursor = page.cursor
        kind, positions = between_pages[step % len(between_pages)]
        step += 1
        if kind == "add":
            live |= set(_add(sqlite_store, scope, len(positions)))
        elif kind == "delete" and live:
            gone = _pick(live, positions)
            delete_reservation_tokens(
                sqlite_store, scope=scope, actor=Actor.system(), credential_ids=gone
            )
            live -= set(gone)
            touched |= set(gone)
        elif kind == "update" and live:
            changed = _pick(live, positions)
            update_reservation_tokens(
                sqlite_store,
                scope=scope,
                actor=Actor.system(),
                changes=[
                    ReservationTokenChange(credential_id=uid, value=f"{uuid.uuid4().int % 10**9}#")
                    for uid in changed
                ],
            )
        assert step < 500
    assert len(seen) == len(set(seen)), "a token was seen twice"
    survivors = at_start - touched
    assert survivors <= set(seen), "a token that lived through the traversal was skipped"


def test_adding_no_tokens_writes_nothing(sqlite_store: Store) -> None:
    # Found by the property above: an empty batch used to insert one row of defaults.
    prop = add_property(sqlite_store, name=f"Empty {uuid.uuid4().hex[:8]}")
    assert _add(sqlite_store, Scope((prop,)), 0) == []
    page = list_reservation_tokens(
        sqlite_store,
        scope=Scope((prop,)),
        query=ReservationTokenQuery(credential_ids=[uuid.uuid4()]),
    )
    assert page.credentials == []
