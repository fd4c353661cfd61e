"""GroupWriter: concurrent small writes share a transaction; a failing one fails alone; a request
past its deadline writes nothing; nothing is answered before it is committed."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Connection, func, select

from keyledger.kit.errors import DeadlineExceeded, RuleViolation
from keyledger.store import Store, deadline_scope
from keyledger.store.locks import hold_now, serialise_on
from keyledger.store.schema import events as events_table
from keyledger.store.writer import GroupWriter
from tests.store.support import append_event, event_outcomes
from tests.support import DatabaseFactory, settings_for


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    store = Store(settings_for(databases.new_url()))
    yield store
    store.dispose()


def test_concurrent_work_commits_in_one_group_and_each_caller_gets_its_result(
    store: Store,
) -> None:
    writer = GroupWriter(store)

    async def main() -> list[str]:
        return await asyncio.gather(*(writer.run(append_event(f"w{n:02d}")) for n in range(20)))

    results = asyncio.run(main())
    assert results == [f"w{n:02d}" for n in range(20)]
    assert writer.groups == 1
    assert event_outcomes(store) == [f"w{n:02d}" for n in range(20)]


def test_a_failing_piece_fails_alone_and_the_others_commit(store: Store) -> None:
    writer = GroupWriter(store)

    def refused(conn: Connection) -> str:
        append_event("refused")(conn)  # written, then undone with its transaction
        raise RuleViolation("No.", subject="test")

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            writer.run(append_event("a")),
            writer.run(refused),
            writer.run(append_event("b")),
            return_exceptions=True,
        )

    first, error, last = asyncio.run(main())
    assert (first, last) == ("a", "b")
    assert isinstance(error, RuleViolation)
    assert event_outcomes(store) == ["a", "b"]


def test_work_past_its_deadline_is_not_run(store: Store) -> None:
    writer = GroupWriter(store)

    async def main() -> tuple[object, ...]:
        with deadline_scope(0.001, started=time.monotonic() - 1):
            late = asyncio.ensure_future(
                writer.run(append_event("late"))
            )  # the task keeps the scope
        return await asyncio.gather(
            late, writer.run(append_event("in time")), return_exceptions=True
        )

    late, in_time = asyncio.run(main())
    assert isinstance(late, DeadlineExceeded)
    assert in_time == "in time"
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(events_table)).scalar_one() == 1


def test_a_caller_is_answered_only_after_the_commit(store: Store) -> None:
    writer = GroupWriter(store)
    seen_by_others: list[int] = []

    def work(conn: Connection) -> str:
        append_event("x")(conn)
        return "done"

    async def main() -> None:
        assert await writer.run(work) == "done"
        other = Store(store.settings)  # another connection sees it once the caller is answered
        with other.read() as conn:
            seen_by_others.append(
                conn.execute(select(func.count()).select_from(events_table)).scalar_one()
            )
        other.dispose()

    asyncio.run(main())
    assert seen_by_others == [1]


def test_a_piece_wanting_a_busy_lock_after_its_row_locks_runs_again_without_a_cycle(
    store: Store,
) -> None:
    """``locks.hold_now`` never waits: a piece that holds a row and wants an advisory lock another
    transaction holds while that one waits for the row (the cycle a blocking lock would close)
    is rolled back, which frees the row, and run again with the lock taken first. PostgreSQL
    only: SQLite has no advisory locks (its one writer serialises every write)."""
    if store.dialect != "postgresql":
        pytest.skip("advisory locks exist on PostgreSQL only")
    key = 424242
    with store.write() as conn:
        conn.exec_driver_sql("CREATE TABLE cycle_probe (id int PRIMARY KEY, v int NOT NULL)")
        conn.exec_driver_sql("INSERT INTO cycle_probe VALUES (1, 0)")
    other_holds_key = threading.Event()
    other_done: list[object] = []

    def other() -> None:  # takes the advisory lock first, then wants the row
        try:
            with store.write() as conn:
                serialise_on(conn, [key])
                other_holds_key.set()
                conn.exec_driver_sql("UPDATE cycle_probe SET v = v + 1 WHERE id = 1")
            other_done.append("committed")
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            other_done.append(error)

    runs: list[str] = []

    def piece(conn: Connection) -> int:  # takes the row first, then wants the advisory lock
        conn.exec_driver_sql("UPDATE cycle_probe SET v = v * 10 WHERE id = 1")
        runs.append("row locked")
        if len(runs) == 1:
            thread.start()
            assert other_holds_key.wait(10)
            _wait_until_someone_waits_for_a_row(store)
        hold_now(conn, [key])
        return int(conn.exec_driver_sql("SELECT v FROM cycle_probe WHERE id = 1").scalar_one())

    thread = threading.Thread(target=other)
    writer = GroupWriter(store)
    result = asyncio.run(writer.run(piece))
    thread.join(10)
    assert other_done == ["committed"]  # not a deadlock victim, and not left waiting
    assert result == 10  # the other's +1 first, then this piece's x10, committed once
    assert runs == ["row locked", "row locked"]
    assert (writer.reruns, writer.groups) == (1, 1)
    with store.read() as conn:
        assert conn.exec_driver_sql("SELECT v FROM cycle_probe").scalar_one() == 10


def _wait_until_someone_waits_for_a_row(store: Store) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with store.engine.connect() as conn:
            waiting = conn.exec_driver_sql(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
            ).scalar_one()
        if waiting:
            return
        time.sleep(0.01)
    raise AssertionError("the other transaction never waited for the row")


def test_hold_now_takes_a_free_lock_and_one_already_held(store: Store) -> None:
    """The lock is taken when free and held until the transaction ends; asking again for one it
    holds succeeds (nothing to wait for). On SQLite it takes nothing and never refuses."""
    with store.write() as conn:
        hold_now(conn, [7, 8])
        hold_now(conn, [8])  # held already: held again
        if store.dialect == "postgresql":
            with store.engine.connect() as other:
                free = other.exec_driver_sql("SELECT pg_try_advisory_lock(8)").scalar_one()
                assert free is False
    if store.dialect == "postgresql":  # released with the transaction
        with store.engine.connect() as other:
            assert other.exec_driver_sql("SELECT pg_try_advisory_lock(8)").scalar_one() is True
            other.exec_driver_sql("SELECT pg_advisory_unlock(8)")


def test_a_group_runs_again_once_with_every_lock_its_pieces_may_want(store: Store) -> None:
    """Two pieces want locks another transaction holds (each its own): the group is rolled back
    once, runs again with every piece's ``wanted`` locks taken first (waiting for the other
    transaction), and every piece's write is committed exactly once. PostgreSQL only."""
    if store.dialect != "postgresql":
        pytest.skip("advisory locks exist on PostgreSQL only")
    first_key, second_key = 515151, 525252
    holding = threading.Event()
    release = threading.Event()

    def other() -> None:
        with store.write() as conn:
            serialise_on(conn, [first_key, second_key])
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    assert holding.wait(10)

    def wants(key: int, label: str) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            append_event(label)(conn)
            if not release.is_set():
                threading.Timer(0.2, release.set).start()  # the other commits soon after
            hold_now(conn, [key])
            return label

        return work

    writer = GroupWriter(store)

    async def main() -> list[str]:
        return list(
            await asyncio.gather(
                writer.run(append_event("plain")),
                writer.run(wants(first_key, "first"), wanted=[first_key]),
                writer.run(wants(second_key, "second"), wanted=[second_key]),
            )
        )

    assert asyncio.run(main()) == ["plain", "first", "second"]
    thread.join(10)
    assert (writer.reruns, writer.groups) == (1, 1)
    assert event_outcomes(store) == ["first", "plain", "second"]


# --- batches (``run_batched``) -------------------------------------------------------------------


def _batch_of_events(calls: list[list[str]]) -> Callable[[Connection, list[str]], list[object]]:
    """A batch that writes one event per item (in one statement) and returns each item upper
    cased; ``"refuse"`` is refused before anything is written for it, ``"boom"`` fails the
    whole batch. Records every call's items in ``calls``."""

    def batch(conn: Connection, items: list[str]) -> list[object]:
        calls.append(list(items))
        if "boom" in items:
            raise RuleViolation("Boom.", subject="test")
        for item in items:
            if item != "refuse":
                append_event(item)(conn)
        return [
            RuleViolation("Refused.", subject="test") if item == "refuse" else item.upper()
            for item in items
        ]

    return batch


def test_a_batch_runs_once_per_group_with_its_items_in_order(store: Store) -> None:
    writer = GroupWriter(store)
    calls: list[list[str]] = []
    batch = _batch_of_events(calls)

    async def main() -> list[object]:
        return list(
            await asyncio.gather(
                writer.run_batched(batch, "b1"),
                writer.run(append_event("plain")),
                writer.run_batched(batch, "b2"),
                writer.run_batched(batch, "b3"),
            )
        )

    assert asyncio.run(main()) == ["B1", "plain", "B2", "B3"]
    assert calls == [["b1", "b2", "b3"]]
    assert writer.groups == 1
    assert event_outcomes(store) == ["b1", "b2", "b3", "plain"]


def test_an_item_a_batch_refuses_fails_alone_in_the_committed_group(store: Store) -> None:
    writer = GroupWriter(store)
    calls: list[list[str]] = []
    batch = _batch_of_events(calls)

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            writer.run_batched(batch, "a"),
            writer.run_batched(batch, "refuse"),
            writer.run_batched(batch, "b"),
            return_exceptions=True,
        )

    first, refused, last = asyncio.run(main())
    assert (first, last) == ("A", "B")
    assert isinstance(refused, RuleViolation)
    assert str(refused) == "Refused."
    assert calls == [["a", "refuse", "b"]]  # one run: nothing undone
    assert writer.groups == 1
    assert event_outcomes(store) == ["a", "b"]


def test_a_failing_batch_runs_again_item_by_item_and_the_culprit_fails_alone(
    store: Store,
) -> None:
    writer = GroupWriter(store)
    calls: list[list[str]] = []
    batch = _batch_of_events(calls)

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            writer.run_batched(batch, "a"),
            writer.run_batched(batch, "boom"),
            writer.run(append_event("plain")),
            writer.run_batched(batch, "b"),
            return_exceptions=True,
        )

    first, boom, plain, last = asyncio.run(main())
    assert (first, plain, last) == ("A", "plain", "B")
    assert isinstance(boom, RuleViolation)
    assert str(boom) == "Boom."
    assert calls == [["a", "boom", "b"], ["a"], ["boom"], ["b"]]
    assert event_outcomes(store) == ["a", "b", "plain"]


def test_a_batch_returning_another_number_of_results_fails_its_callers(store: Store) -> None:
    writer = GroupWriter(store)

    def short(conn: Connection, items: list[str]) -> list[object]:
        append_event("short")(conn)
        return []

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            writer.run_batched(short, "x"),
            writer.run(append_event("other")),
            return_exceptions=True,
        )

    failed, other = asyncio.run(main())
    assert isinstance(failed, RuntimeError)
    assert other == "other"
    assert event_outcomes(store) == ["other"]
