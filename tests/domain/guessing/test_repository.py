"""The miss counts a write transaction has read are read once (issue 14's RADIUS benchmark) and
stay exact: this transaction's own additions update them, and the next transaction reads the
table again."""

from __future__ import annotations

from datetime import UTC, datetime

from keyledger.domain.guessing import repository
from keyledger.store import Store

START = datetime(2030, 1, 1, 12, tzinfo=UTC)
NEXT = datetime(2030, 1, 1, 13, tzinfo=UTC)


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
