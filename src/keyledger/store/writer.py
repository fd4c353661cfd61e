"""Group commit: the small writes of concurrent requests share one transaction.

Door checks, hotspot sessions and usage reports each write a little (an event, a counter) and are
answered only once that write is committed. Committed one by one, every request pays a whole
write transaction (and on SQLite a turn at the single write lock). ``GroupWriter`` instead
collects the write work that the requests of one event-loop turn hand it, runs it in one write
transaction right after that turn, then answers each of them:

* nothing is answered before it is committed, so nothing acknowledged is lost;
* work whose request deadline (``deadline_scope``) has passed before its turn is not run (the
  caller gets ``DeadlineExceeded``), so a timed-out request changes nothing;
* when one piece raises, the group is rolled back and every piece is run again in a transaction
  of its own, so one bad request never takes the others down with it; a piece alone that
  PostgreSQL aborts as a deadlock victim runs once more. Work must therefore only touch the
  connection it is given (it may run several times; only one run is ever committed);
* a piece that finds midway it needs advisory locks another transaction holds
  (``locks.hold_now`` raised ``LocksWanted``) has its group rolled back and run again with those
  locks and every piece's ``wanted`` ones (the locks it may want) taken first, beside the
  declared ``locks``, in key order before any row lock: at most one such run again per group.

The group commits on the event loop itself, like every other store call (docs/architecture.md):
a writer thread was measured first and lost, because every commit then waited for the busy
loop's GIL (benchmarks/README.md).

On a SQLite file several workers take turns at the one write lock (``WriteTurn``,
``store/engine.py``). A group takes the turn at once when it is free; when another worker holds
it (or waits for it: that one goes first), the group does not make the loop wait: a helper
thread waits for the turn in the kernel and hands it to the loop (``WriteTurn.take_later``),
and until then the loop keeps receiving and deciding what it can, and work handed to the writer
meanwhile joins the waiting group. A group that waited ``busy_timeout`` goes ahead without the
turn and SQLite's own locking decides, as ``Store.write`` does.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection

from keyledger.kit.errors import DeadlineExceeded, StoreUnavailable, WriteConflict
from keyledger.store.engine import (
    Store,
    TurnRequest,
    TurnTaken,
    current_deadline,
    pause_after_conflict,
)
from keyledger.store.locks import LocksWanted, serialise_on

log = structlog.get_logger("keyledger.store")

Result = TypeVar("Result")


Item = TypeVar("Item")

#: Work done for several requests at once: ``batch(conn, items)`` returns one result per item,
#: in order, as running it for each item alone in turn would (see ``GroupWriter.run_batched``).
Batch = Callable[[Connection, list[Item]], list[Any]]


@dataclass
class _Work:
    run: Callable[[Connection], Any] | None
    deadline: float | None
    future: asyncio.Future[Any]
    locks: Sequence[int] = ()
    wanted: Sequence[int] = ()
    batch: Batch[Any] | None = None
    item: Any = None


class GroupWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[_Work] = []
        self._waiting: TurnRequest | None = None  # for SQLite's write turn
        self._give_up: asyncio.TimerHandle | None = None
        self.groups = 0  # committed groups, for tests and benchmarks
        self.reruns = 0  # groups run again for the locks a piece wanted (``LocksWanted``)
        self.waits = 0  # groups that waited for another writer's turn, for tests and benchmarks

    async def run(
        self,
        work: Callable[[Connection], Result],
        *,
        locks: Sequence[int] = (),
        wanted: Sequence[int] = (),
    ) -> Result:
        """Run ``work`` in a write transaction shared with the other requests of this loop
        turn; its result once committed. ``locks`` are advisory lock keys (``store/locks.py``)
        that ``work`` takes: the group takes those of all its pieces first, in key order.
        ``wanted`` are keys ``work`` may ask for midway (``locks.hold_now``): taken first only
        when a piece of the group asked for a lock it could not have at once."""
        loop = asyncio.get_running_loop()
        piece = _Work(work, current_deadline(), loop.create_future(), locks, wanted)
        result: Result = await self._enqueue(piece)
        return result

    async def run_batched(
        self,
        batch: Batch[Item],
        item: Item,
        *,
        locks: Sequence[int] = (),
        wanted: Sequence[int] = (),
    ) -> Any:
        """Like ``run``, for work that is cheaper done for many requests at once: the group
        calls ``batch`` once with the items of all its pieces that name the same ``batch``
        (in the order they came), where the first of them stands among the group's pieces
        (so its later items run before pieces that came between them: every piece of a group
        is answered after its one commit, so any order of them is one a client could see),
        and each caller gets its item's result. ``batch`` must return
        what running it for each item alone, one after the other, would (its reads and writes
        may be shared). An item's result that is an exception is raised to its caller alone:
        ``batch`` returns one only for an item it refused before writing anything for it.
        When the group fails, each piece runs again alone, as ``batch(conn, [item])``."""
        loop = asyncio.get_running_loop()
        work = _Work(None, current_deadline(), loop.create_future(), locks, wanted, batch, item)
        return await self._enqueue(work)

    async def _enqueue(self, work: _Work) -> Any:
        if not self._pending:
            # A fresh context: the group must not run under the first request's deadline.
            # (While a group waits for SQLite's write turn, ``_pending`` holds it: later work
            # joins it.)
            asyncio.get_running_loop().call_soon(self._flush, context=contextvars.Context())
        self._pending.append(work)
        return await work.future

    def _flush(self) -> None:
        turn = self._store.write_turn
        if turn is None:  # PostgreSQL, an in-memory SQLite: the transaction is all
            self._commit(self._take_group())
            return
        taken = turn.take_now()
        if taken is not None:
            self._commit_in(taken)
            return
        # Another writer holds the turn or waits for it: the helper thread waits in its place
        # while this loop keeps serving; work arriving meanwhile joins this group.
        loop = asyncio.get_running_loop()
        self.waits += 1
        self._waiting = turn.take_later(loop, self._handed)
        self._give_up = loop.call_later(
            turn.timeout, self._stop_waiting, context=contextvars.Context()
        )

    def _handed(self, taken: TurnTaken) -> None:
        self._waiting = None
        if self._give_up is not None:
            self._give_up.cancel()
            self._give_up = None
        self._commit_in(taken)

    def _stop_waiting(self) -> None:
        """``busy_timeout`` passed without the turn: the group goes ahead without it and
        SQLite's own locking decides, as ``Store.write`` does."""
        self._give_up = None
        if self._waiting is None or not self._waiting.cancel():
            return  # the turn is on its way: ``_handed`` runs
        self._waiting = None
        self._commit(self._take_group())

    def _commit_in(self, taken: TurnTaken) -> None:
        try:
            self._commit(self._take_group())
        finally:
            taken.release()

    def _take_group(self) -> list[_Work]:
        group, self._pending = self._pending, []
        return [item for item in group if self._still_wanted(item)]

    @staticmethod
    def _still_wanted(item: _Work) -> bool:
        if item.future.cancelled():
            return False  # the request went away before its turn
        if item.deadline is not None and time.monotonic() > item.deadline:
            item.future.set_exception(
                DeadlineExceeded("The request ran past its processing time limit.")
            )
            return False
        return True

    def _commit(self, group: list[_Work], *, retried: bool = False) -> None:
        """Run ``group`` in one write transaction (SQLite's write turn is already held, or was
        given up on, by ``_flush``); on failure every piece again, alone, in the same turn."""
        if not group:
            return
        wanted: frozenset[int] = frozenset()  # taken first after a ``LocksWanted``
        while True:
            try:
                with self._store.write(take_turn=False) as conn:
                    serialise_on(conn, [*wanted, *(key for item in group for key in item.locks)])
                    results = _run_group(conn, group)
            except LocksWanted as asked:
                if not asked.keys <= wanted:  # again, with every lock a piece may want first
                    wanted |= asked.keys.union(*(item.wanted for item in group))
                    self.reruns += 1
                    continue
                # Cannot happen (a lock held is held again): a bug, handed to the callers.
                log.error("group_writer_lock_not_held", keys=len(asked.keys))
                error: Exception = asked
            except Exception as failure:  # noqa: BLE001 - handed to the callers
                error = failure
            else:
                break
            if isinstance(error, StoreUnavailable):
                # The database itself is out of reach or locked past busy_timeout: no piece is
                # the culprit, and each alone would wait that long again on the loop.
                for item in group:
                    _settle(item, error=error)
            elif len(group) == 1 and isinstance(error, WriteConflict) and not retried:
                pause_after_conflict()
                self._commit(group, retried=True)  # a deadlock victim: once more
            elif len(group) == 1:
                _settle(group[0], error=error)
            else:  # find the culprit: every piece again, alone
                for item in group:
                    self._commit([item])
            return
        self.groups += 1
        for item, result in zip(group, results, strict=True):
            _settle(item, result=result)


def _run_group(conn: Connection, group: list[_Work]) -> list[Any]:
    """Every piece's result, in order: a batch runs once, where its first piece stands, for all
    the pieces naming it."""
    results: list[Any] = [None] * len(group)
    batches: dict[Any, list[int]] = {}
    for index, item in enumerate(group):
        if item.batch is not None:
            batches.setdefault(item.batch, []).append(index)
    for index, item in enumerate(group):
        if item.run is not None:
            results[index] = item.run(conn)
            continue
        members = batches.pop(item.batch, None)
        if members is None:
            continue  # run with its batch's first piece
        assert item.batch is not None
        answers = item.batch(conn, [group[member].item for member in members])
        if len(answers) != len(members):
            raise RuntimeError("a batch returned another number of results than it had items")
        for member, answer in zip(members, answers, strict=True):
            results[member] = answer
    return results


def _settle(item: _Work, *, result: Any = None, error: Exception | None = None) -> None:
    if item.future.done():  # cancelled while its group committed: the write stays
        return
    if error is None and isinstance(result, Exception) and item.batch is not None:
        error = result  # refused by its batch before anything was written for it
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result)
