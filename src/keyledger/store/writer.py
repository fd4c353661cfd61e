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

from keyledger.kit.errors import DeadlineExceeded, WriteConflict
from keyledger.store.engine import Store, current_deadline
from keyledger.store.locks import LocksWanted, serialise_on

log = structlog.get_logger("keyledger.store")

Result = TypeVar("Result")


@dataclass
class _Work:
    run: Callable[[Connection], Any]
    deadline: float | None
    future: asyncio.Future[Any]
    locks: Sequence[int] = ()
    wanted: Sequence[int] = ()


class GroupWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[_Work] = []
        self.groups = 0  # committed groups, for tests and benchmarks
        self.reruns = 0  # groups run again for the locks a piece wanted (``LocksWanted``)

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
        item = _Work(work, current_deadline(), loop.create_future(), locks, wanted)
        if not self._pending:
            # A fresh context: the group must not run under the first request's deadline.
            loop.call_soon(self._flush, context=contextvars.Context())
        self._pending.append(item)
        result: Result = await item.future
        return result

    def _flush(self) -> None:
        group, self._pending = self._pending, []
        self._commit([item for item in group if self._still_wanted(item)])

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
        if not group:
            return
        wanted: frozenset[int] = frozenset()  # taken first after a ``LocksWanted``
        while True:
            try:
                with self._store.write() as conn:
                    serialise_on(conn, [*wanted, *(key for item in group for key in item.locks)])
                    results = [item.run(conn) for item in group]
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
            if len(group) == 1 and isinstance(error, WriteConflict) and not retried:
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


def _settle(item: _Work, *, result: Any = None, error: Exception | None = None) -> None:
    if item.future.done():  # cancelled while its group committed: the write stays
        return
    if error is not None:
        item.future.set_exception(error)
    else:
        item.future.set_result(result)
