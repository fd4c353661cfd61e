"""The miss counts a write transaction has read are read once (issue 14's RADIUS benchmark) and
stay exact: this transaction's own additions update them, and the next transaction reads the
table again."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from keyledger.domain.guessing import repository
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget
from keyledger.kit.errors import DomainError
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.schema import guess_counts
from tests.support import DatabaseFactory

START = datetime(2030, 1, 1, 12, tzinfo=UTC)
NEXT = datetime(2030, 1, 1, 13, tzinfo=UTC)


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    """A fresh, migrated store on each database, used through the core (no server)."""
    fresh = Store(Settings(database_url=databases.new_url()))
    yield fresh
    fresh.dispose()


def test_counts_read_in_a_transaction_follow_its_own_additions(sqlite_store: Store) -> None:
    with sqlite_store.write() as conn:
        assert repository.misses_in(conn, subjects=["a", "b"], start=START) == {}
        assert repository.add_misses(conn, subject="a", misses=2, start=START) == 2
        assert repository.misses_in(conn, subjects=["a", "b"], start=START) == {"a": 2}
        assert repository.misses_in(conn, subjects=["a"], start=START) == {"a": 2}
        assert repository.add_misses(conn, subject="a", misses=1, start=NEXT) == 1
        assert repository.misses_in(conn, subjects=["a"], start=NEXT) == {"a": 1}
        # the new window dropped the older one: read again, not remembered
        assert repository.misses_in(conn, subjects=["a"], start=START) == {}


def test_a_later_transaction_reads_the_table_again(sqlite_store: Store) -> None:
    with sqlite_store.write() as conn:
        assert repository.misses_in(conn, subjects=["c"], start=START) == {}
    with sqlite_store.write() as other:
        repository.add_misses(other, subject="c", misses=3, start=START)
    with sqlite_store.write() as conn:
        assert repository.misses_in(conn, subjects=["c", "d"], start=START) == {"c": 3}


def test_three_subjects_are_read_too(sqlite_store: Store) -> None:
    with sqlite_store.write() as conn:
        repository.add_misses(conn, subject="e", misses=1, start=START)
    with sqlite_store.read() as conn:
        found = repository.misses_in(conn, subjects=["e", "f", "g"], start=START)
    assert found == {"e": 1}


def test_past_windows_of_every_subject_are_forgotten(store: Store) -> None:
    """A device that missed once and never again keeps no row past its window (on both
    databases): ``forget_past_windows`` deletes every subject's earlier windows, and keeps the
    current window's counts."""
    budget = GuessBudget(window_seconds=3600)
    now = NEXT + timedelta(minutes=5)
    with store.write() as conn:
        for device in range(3):
            repository.add_misses(
                conn, subject=f"caller:nas:1:device:{device}", misses=1, start=START
            )
        repository.add_misses(conn, subject="nas:1", misses=3, start=START)
        repository.add_misses(conn, subject="nas:1", misses=1, start=NEXT)
        repository.add_misses(conn, subject="caller:nas:1:device:9", misses=2, start=NEXT)
    with store.write() as conn:
        assert guessing.forget_past_windows(conn, budget=budget, now=now) == 3
    with store.read() as conn:
        left = conn.execute(select(guess_counts.c.subject, guess_counts.c.misses)).all()
    assert sorted(tuple(row) for row in left) == [("caller:nas:1:device:9", 2), ("nas:1", 1)]


def test_forgetting_gives_up_rather_than_wait_behind_a_writer(store: Store) -> None:
    """On PostgreSQL a prune that meets a row another transaction holds stops within its lock
    timeout (it runs on a worker's event loop) and deletes nothing; on SQLite the one writer
    never meets one."""
    if store.dialect != "postgresql":
        pytest.skip("SQLite has one writer: nothing to wait for")
    budget = GuessBudget(window_seconds=3600)
    with store.write() as conn:
        repository.add_misses(conn, subject="nas:7", misses=1, start=START)
    with store.write() as holder:
        holder.execute(
            guess_counts.update().where(guess_counts.c.subject == "nas:7").values(misses=2)
        )
        began = time.monotonic()
        with pytest.raises(DomainError), store.write() as conn:
            guessing.forget_past_windows(conn, budget=budget, now=NEXT)
        assert time.monotonic() - began < 5
    with store.read() as conn:
        left = conn.execute(select(guess_counts.c.subject, guess_counts.c.misses)).all()
    assert [tuple(row) for row in left] == [("nas:7", 2)]
