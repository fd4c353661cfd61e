"""GroupWriter: concurrent small writes share a transaction; a failing one fails alone; a request
past its deadline writes nothing; nothing is answered before it is committed."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Connection, func, select

from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor, EventKind, NewEvent
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import DeadlineExceeded, RuleViolation
from keyledger.store import Store, deadline_scope
from keyledger.store.schema import events as events_table
from keyledger.store.writer import GroupWriter
from tests.support import DatabaseFactory, settings_for


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    store = Store(settings_for(databases.new_url()))
    yield store
    store.dispose()


def _append(label: str) -> Callable[[Connection], str]:
    def work(conn: Connection) -> str:
        events.append(
            conn,
            NewEvent(EventKind.ACCESS_CHECKED, outcome=label),
            actor=Actor.system(),
            now=utc_now(),
        )
        return label

    return work


def _outcomes(store: Store) -> list[str]:
    with store.read() as conn:
        return sorted(
            str(row[0]) for row in conn.execute(select(events_table.c.outcome).order_by("id"))
        )


def test_concurrent_work_commits_in_one_group_and_each_caller_gets_its_result(
    store: Store,
) -> None:
    writer = GroupWriter(store)

    async def main() -> list[str]:
        return await asyncio.gather(*(writer.run(_append(f"w{n:02d}")) for n in range(20)))

    results = asyncio.run(main())
    assert results == [f"w{n:02d}" for n in range(20)]
    assert writer.groups == 1
    assert _outcomes(store) == [f"w{n:02d}" for n in range(20)]


def test_a_failing_piece_fails_alone_and_the_others_commit(store: Store) -> None:
    writer = GroupWriter(store)

    def refused(conn: Connection) -> str:
        _append("refused")(conn)  # written, then undone with its transaction
        raise RuleViolation("No.", subject="test")

    async def main() -> tuple[object, ...]:
        return await asyncio.gather(
            writer.run(_append("a")),
            writer.run(refused),
            writer.run(_append("b")),
            return_exceptions=True,
        )

    first, error, last = asyncio.run(main())
    assert (first, last) == ("a", "b")
    assert isinstance(error, RuleViolation)
    assert _outcomes(store) == ["a", "b"]


def test_work_past_its_deadline_is_not_run(store: Store) -> None:
    writer = GroupWriter(store)

    async def main() -> tuple[object, ...]:
        with deadline_scope(0.001, started=time.monotonic() - 1):
            late = asyncio.ensure_future(writer.run(_append("late")))  # the task keeps the scope
        return await asyncio.gather(late, writer.run(_append("in time")), return_exceptions=True)

    late, in_time = asyncio.run(main())
    assert isinstance(late, DeadlineExceeded)
    assert in_time == "in time"
    with store.read() as conn:
        assert conn.execute(select(func.count()).select_from(events_table)).scalar_one() == 1


def test_a_caller_is_answered_only_after_the_commit(store: Store) -> None:
    writer = GroupWriter(store)
    seen_by_others: list[int] = []

    def work(conn: Connection) -> str:
        _append("x")(conn)
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
