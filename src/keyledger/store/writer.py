"""Group commit: the small writes of concurrent requests share one transaction.

Door checks, hotspot sessions and usage reports each write a little (an event, a counter) and are
answered only once that write is committed. Committed one by one, they queue for SQLite's single
write lock, and a worker waiting for the lock blocks its event loop. ``GroupWriter`` instead hands
every piece of write work to one thread per process, which runs all the work queued while the
previous group was committing in a single write transaction, then answers each caller:

* nothing is answered before it is committed, so nothing acknowledged is lost;
* work whose caller's deadline has passed before its turn is not run (the caller gets
  ``DeadlineExceeded``), so a timed-out request changes nothing;
* when one piece raises, the group is rolled back and every piece is run again in a transaction
  of its own, so one bad request never takes the others down with it. Work must therefore only
  touch the connection it is given (it may run twice; only one run is ever committed).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Connection

from keyledger.errors import DeadlineExceeded
from keyledger.store.engine import Store, current_deadline

Result = TypeVar("Result")

#: Most pieces of work in one transaction.
MAX_GROUP = 256


@dataclass
class _Work:
    run: Callable[[Connection], Any]
    deadline: float | None
    future: Future[Any] = field(default_factory=Future)

    def expired(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline


class GroupWriter:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[_Work | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.groups = 0  # committed groups, for tests and benchmarks

    async def run(self, work: Callable[[Connection], Result]) -> Result:
        """Run ``work`` in a write transaction shared with other callers; its result once
        committed. The request deadline in force (``deadline_scope``) applies."""
        item = _Work(work, current_deadline())
        self._start()
        self._queue.put(item)
        result: Result = await asyncio.wrap_future(item.future)
        return result

    def close(self) -> None:
        """Finish the queued work, then stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            self._queue.put(None)
            thread.join(timeout=30)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._serve, name="keyledger-group-writer", daemon=True
                )
                self._thread.start()

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit([item for item in group if self._still_wanted(item)])
            if stop:
                return

    @staticmethod
    def _still_wanted(item: _Work) -> bool:
        if not item.future.set_running_or_notify_cancel():
            return False  # the caller went away before its turn
        if item.expired():
            item.future.set_exception(
                DeadlineExceeded("The request ran past its processing time limit.")
            )
            return False
        return True

    def _commit(self, group: list[_Work]) -> None:
        if not group:
            return
        try:
            with self._store.write() as conn:
                results = [item.run(conn) for item in group]
        except Exception as error:  # noqa: BLE001 - handed to the callers
            if len(group) == 1:
                group[0].future.set_exception(error)
            else:  # find the culprit: every piece again, alone
                for item in group:
                    self._commit([item])
            return
        self.groups += 1
        for item, result in zip(group, results, strict=True):
            item.future.set_result(result)
