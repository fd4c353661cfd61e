"""SQLite's write turn and the group writer: while another writer holds the turn, a group waits
for it in a helper thread and the event loop keeps serving (later work joins the group); the
turn goes to the waiting writer before the one that has just let go of it can take it again; a
group still gives up at ``busy_timeout`` and still skips work past its deadline; a process with
a waiting group still exits."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Connection, event, text

from keyledger.kit.errors import DeadlineExceeded
from keyledger.store import Store, deadline_scope
from keyledger.store.engine import TurnTaken, WriteTurn
from keyledger.store.writer import GroupWriter
from tests.store.support import append_event, event_outcomes
from tests.support import DatabaseFactory, flock_waiters, settings_for

#: Loop turns a test lets pass to show that the loop keeps turning while a group waits.
TURNS = 20


def _turn(store: Store) -> WriteTurn:
    turn = store.write_turn
    assert turn is not None  # a SQLite file
    return turn


def _take(store: Store) -> TurnTaken:
    """The turn, for another writer (a second ``Store``: its own file handles, as another
    process has)."""
    taken = _turn(store).take_now()
    assert taken is not None
    return taken


async def _until(condition: Callable[[], bool]) -> None:
    """Let the loop turn until ``condition`` holds (no time limit: pytest-timeout has one)."""
    while not condition():  # noqa: ASYNC110 - a condition of another thread or of the kernel
        await asyncio.sleep(0.001)


def test_a_group_waits_off_the_loop_and_later_work_joins_it(
    sqlite_databases: DatabaseFactory,
) -> None:
    url = sqlite_databases.new_url()
    store, other = Store(settings_for(url)), Store(settings_for(url))
    writer = GroupWriter(store)
    seen_while_held: dict[str, object] = {}

    async def main() -> list[str]:
        held = _take(other)
        first = [asyncio.ensure_future(writer.run(append_event(f"a{n}"))) for n in range(3)]
        await _until(lambda: writer.waits == 1)
        for _ in range(TURNS):  # the loop turns: this coroutine runs while the group waits
            await asyncio.sleep(0)
        later = [asyncio.ensure_future(writer.run(append_event(f"b{n}"))) for n in range(3)]
        for _ in range(TURNS):
            await asyncio.sleep(0)
        seen_while_held["answered"] = [f.done() for f in first + later]
        seen_while_held["committed"] = event_outcomes(store)  # a read needs no turn
        seen_while_held["waits"] = writer.waits
        held.release()
        return list(await asyncio.gather(*first, *later))

    try:
        results = asyncio.run(main())
        assert seen_while_held == {"answered": [False] * 6, "committed": [], "waits": 1}
        assert results == ["a0", "a1", "a2", "b0", "b1", "b2"]
        assert writer.groups == 1  # the work that came while it waited joined the group
        assert event_outcomes(store) == ["a0", "a1", "a2", "b0", "b1", "b2"]
    finally:
        store.dispose()
        other.dispose()


def test_the_waiting_writer_takes_the_turn_before_the_one_that_let_go_of_it(
    sqlite_databases: DatabaseFactory,
) -> None:
    url = sqlite_databases.new_url()
    store, other = Store(settings_for(url)), Store(settings_for(url))
    writer = GroupWriter(store)
    order: list[str] = []

    async def main() -> None:
        held = _take(other)
        waiting = asyncio.ensure_future(writer.run(append_event("waited")))
        # The helper thread holds the gate once it waits for the turn itself.
        await _until(lambda: flock_waiters(f"{store.engine.url.database}-keyledger-lock") == 1)
        held.release()
        again = _turn(other).take_now()  # at once, as a worker that has just committed would
        order.append("other took it" if again is not None else "other queued")
        if again is not None:
            again.release()
        order.append(await waiting)
        again = _turn(other).take_now()
        order.append("other took it" if again is not None else "other queued")
        if again is not None:
            again.release()

    try:
        asyncio.run(main())
        assert order == ["other queued", "waited", "other took it"]
        assert event_outcomes(store) == ["waited"]
    finally:
        store.dispose()
        other.dispose()


def test_a_group_that_waited_busy_timeout_goes_ahead_and_sqlite_decides(
    sqlite_databases: DatabaseFactory,
) -> None:
    """The other writer holds the turn (not SQLite's lock) past ``busy_timeout``: the group goes
    ahead without it, as ``Store.write`` does; a later group gets the turn again."""
    url = sqlite_databases.new_url()
    store = Store(settings_for(url, sqlite_busy_timeout_ms=300))
    other = Store(settings_for(url))
    writer = GroupWriter(store)

    async def main() -> tuple[str, str]:
        held = _take(other)
        try:
            done = await writer.run(append_event("went ahead"))
        finally:
            held.release()
        return done, await writer.run(append_event("next"))

    try:
        assert asyncio.run(main()) == ("went ahead", "next")
        assert writer.waits >= 1
        assert event_outcomes(store) == ["next", "went ahead"]
    finally:
        store.dispose()
        other.dispose()


def test_work_whose_deadline_passes_while_its_group_waits_is_not_run(
    sqlite_databases: DatabaseFactory,
) -> None:
    url = sqlite_databases.new_url()
    store, other = Store(settings_for(url)), Store(settings_for(url))
    writer = GroupWriter(store)

    async def main() -> tuple[object, ...]:
        held = _take(other)
        with deadline_scope(0.05):
            late = asyncio.ensure_future(
                writer.run(append_event("late"))
            )  # the task keeps the scope
        in_time = asyncio.ensure_future(writer.run(append_event("in time")))
        await _until(lambda: writer.waits == 1)
        await asyncio.sleep(0.1)  # past the first one's deadline
        held.release()
        return tuple(await asyncio.gather(late, in_time, return_exceptions=True))

    try:
        late, in_time = asyncio.run(main())
        assert isinstance(late, DeadlineExceeded)
        assert in_time == "in time"
        assert event_outcomes(store) == ["in time"]
    finally:
        store.dispose()
        other.dispose()


def test_a_process_whose_group_waits_for_the_turn_still_exits(
    sqlite_databases: DatabaseFactory,
) -> None:
    """The helper thread blocked in ``flock`` never holds up the end of the process; the work
    that waited is not written (its caller was never answered)."""
    url = sqlite_databases.new_url()
    other = Store(settings_for(url))
    script = textwrap.dedent(
        """
        import asyncio
        import sys
        from sqlalchemy import text
        from keyledger.store import Store
        from keyledger.store.writer import GroupWriter
        from tests.support import settings_for

        store = Store(settings_for(sys.argv[1]))
        writer = GroupWriter(store)

        def never(conn):
            conn.execute(text("INSERT INTO store_marks (name, created_utc) VALUES ('x', '2030')"))

        async def main():
            task = asyncio.ensure_future(writer.run(never))
            while writer.waits == 0:
                await asyncio.sleep(0.001)
            print("waiting", flush=True)
            task.cancel()

        asyncio.run(main())
        store.dispose()
        print("ended", flush=True)
        """
    )
    held = _take(other)
    try:
        done = subprocess.run(
            [sys.executable, "-c", script, url],
            cwd=Path(__file__).parents[2],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        held.release()
    try:
        assert (done.returncode, done.stdout.split()) == (0, ["waiting", "ended"]), done.stderr
        with other.read() as conn:
            assert conn.execute(text("SELECT count(*) FROM store_marks")).scalar_one() == 0
    finally:
        other.dispose()


def _free_to_another_process(path: str) -> bool:
    """Could another process take this lock file now? (a fresh open file description, as
    another process has: a lock held through this process's own handles counts)."""
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(fd, fcntl.LOCK_UN)
        return True
    finally:
        os.close(fd)


def test_a_write_of_the_same_process_while_a_group_waits_leaves_the_groups_turn_alone(
    sqlite_databases: DatabaseFactory,
) -> None:
    """A Mews, Nexudus or admin write (``Store.write``, on the loop) runs while this process's
    group waits for the turn in the helper thread. It shares the helper's open files, where a
    lock held looks free: it must neither take the turn through them nor let go of it, so the
    group commits holding the turn (attacker's review: it used to strip the group's lock, and
    another process could then write at the same time)."""
    url = sqlite_databases.new_url()
    store, other = Store(settings_for(url)), Store(settings_for(url))
    lock_path = f"{store.engine.url.database}-keyledger-lock"
    writer = GroupWriter(store)
    during_the_group: list[bool] = []

    def group_piece(conn: Connection) -> str:
        during_the_group.append(_free_to_another_process(lock_path))
        return append_event("group")(conn)

    async def main() -> str:
        held = _take(other)  # another worker's turn
        waiting = asyncio.ensure_future(writer.run(group_piece))
        await _until(lambda: flock_waiters(lock_path) == 1)  # the helper waits for it
        threading.Timer(0.05, held.release).start()
        with store.write() as conn:  # on the loop, while the group waits
            append_event("plain write")(conn)
        return await waiting

    try:
        assert asyncio.run(main()) == "group"
        assert during_the_group == [False]  # the group held the turn while it committed
        assert event_outcomes(store) == ["group", "plain write"]
        assert _free_to_another_process(lock_path)  # and let go of it afterwards
    finally:
        store.dispose()
        other.dispose()


def test_a_group_that_finds_sqlite_itself_locked_fails_as_a_whole(
    sqlite_databases: DatabaseFactory,
) -> None:
    """Another program holds SQLite's write lock (not keyledger's turn) past ``busy_timeout``:
    every piece of the group is answered ``StoreUnavailable`` and nothing is written; the group
    is not tried again piece by piece (each alone would wait ``busy_timeout`` on the loop)."""
    url = sqlite_databases.new_url()
    store = Store(settings_for(url, sqlite_busy_timeout_ms=200))
    writer = GroupWriter(store)
    database = store.engine.url.database
    assert database is not None
    raw = sqlite3.connect(database, isolation_level=None)
    raw.execute("BEGIN IMMEDIATE")  # e.g. a long import by another program
    runs: list[str] = []
    transactions: list[str] = []
    event.listen(store.engine, "engine_connect", lambda conn: transactions.append("connected"))

    def piece(label: str) -> Callable[[Connection], str]:
        def work(conn: Connection) -> str:
            runs.append(label)
            return append_event(label)(conn)

        return work

    async def main() -> list[object]:
        return list(
            await asyncio.gather(
                *(writer.run(piece(f"p{n}")) for n in range(4)), return_exceptions=True
            )
        )

    try:
        results = asyncio.run(main())
        assert [type(result).__name__ for result in results] == ["StoreUnavailable"] * 4
        assert runs == []  # BEGIN IMMEDIATE itself waited: no piece ran
        assert transactions == ["connected"]  # one wait of busy_timeout, not one more per piece
    finally:
        raw.execute("ROLLBACK")
        raw.close()
    try:
        assert event_outcomes(store) == []
    finally:
        store.dispose()
