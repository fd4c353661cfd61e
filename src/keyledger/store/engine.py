"""Engine set-up and transactions.

* SQLite: WAL, ``synchronous`` as configured, ``busy_timeout``, ``foreign_keys=ON``; the driver's
  own transaction handling is switched off so that reads begin with ``BEGIN`` and every write
  transaction with ``BEGIN IMMEDIATE`` (a deferred BEGIN turns concurrent read-then-write
  transactions into "database is locked" errors).
* A processing deadline (``deadline_scope``) bounds every transaction: SQLite statements are
  interrupted by a progress handler, PostgreSQL ones by ``statement_timeout``, and a transaction
  that finishes past the deadline is rolled back instead of committed, so a request that timed out
  keeps nothing.
"""

from __future__ import annotations

import asyncio
import contextvars
import fcntl
import os
import random
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.pool import ConnectionPoolEntry

from keyledger.kit.errors import DeadlineExceeded, StoreUnavailable, WriteConflict
from keyledger.kit.sealing import ValueSealer
from keyledger.kit.settings import Settings

log = structlog.get_logger("keyledger.store")

Result = TypeVar("Result")

_deadline: ContextVar[float | None] = ContextVar("keyledger_deadline", default=None)

#: Progress handler granularity: SQLite VM instructions between deadline checks.
_SQLITE_PROGRESS_STEPS = 10_000


@contextmanager
def deadline_scope(seconds: float | None, *, started: float | None = None) -> Iterator[None]:
    """Bound every store transaction opened inside the block to ``started + seconds``."""
    if seconds is None:
        yield
        return
    token = _deadline.set((started if started is not None else time.monotonic()) + seconds)
    try:
        yield
    finally:
        _deadline.reset(token)


def current_deadline() -> float | None:
    """The ``time.monotonic()`` deadline of the enclosing ``deadline_scope``, if any."""
    return _deadline.get()


def _remaining() -> float | None:
    deadline = _deadline.get()
    return None if deadline is None else deadline - time.monotonic()


class Store:
    """The database behind keyledger, with read and write transactions."""

    def __init__(self, settings: Settings, *, engine: Engine | None = None) -> None:
        self.settings = settings
        self.engine = engine or build_engine(settings)
        #: How door credential values are sealed and found (``KEYLEDGER_ENCRYPTION_KEY``).
        self.sealer = ValueSealer(settings.encryption_keys)
        self.dialect = self.engine.dialect.name
        self._writer = self.engine.execution_options(keyledger_write=True)
        database = self.engine.url.database if self.dialect == "sqlite" else None
        self._write_turn = (
            WriteTurn(f"{database}-keyledger-lock", settings.sqlite_busy_timeout_ms / 1000)
            if database and database != ":memory:" and "mode=memory" not in str(self.engine.url)
            else None
        )

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A consistent read transaction."""
        with self._transaction(self.engine) as conn:
            yield conn

    def ping(self) -> None:
        """Reach the database once (readiness); raises as a read would when it cannot."""
        with self.read() as conn:
            conn.execute(text("SELECT 1"))

    @property
    def write_turn(self) -> WriteTurn | None:
        """Who writes next to a SQLite file (None on PostgreSQL and an in-memory SQLite)."""
        return self._write_turn

    @contextmanager
    def write(self, *, take_turn: bool = True) -> Iterator[Connection]:
        """A write transaction: atomic, serialised against other writers on SQLite.

        ``take_turn=False``: the caller holds SQLite's write turn already, or gave up waiting
        for it (the group writer, ``writer.py``); the transaction alone is opened."""
        if self._write_turn is None or not take_turn:
            with self._transaction(self._writer) as conn:
                yield conn
            return
        with self._write_turn.held(_remaining()), self._transaction(self._writer) as conn:
            yield conn

    def write_retrying(self, work: Callable[[Connection], Result]) -> Result:
        """``work`` in a write transaction; run once more in a new one when PostgreSQL aborted
        the first as a deadlock victim or on a serialization failure (``WriteConflict``).

        Writes take their locks in one canonical order (docs/architecture.md, "Concurrent
        writes"), so this is a second line of defence, e.g. against a group commit of hotspot
        reports that locks vouchers in arrival order. ``work`` must only touch the connection
        it is given (it may run twice; only one run is ever committed)."""
        try:
            with self.write() as conn:
                return work(conn)
        except WriteConflict:
            log.info("write_retried")
            pause_after_conflict()
            with self.write() as conn:
                return work(conn)

    @contextmanager
    def _transaction(self, engine: Engine) -> Iterator[Connection]:
        remaining = _remaining()
        if remaining is not None and remaining <= 0:
            raise DeadlineExceeded("The request ran past its processing time limit.")
        try:
            with engine.connect() as conn, conn.begin():
                self._arm_deadline(conn)
                try:
                    yield conn
                finally:
                    self._disarm_deadline(conn)
                remaining = _remaining()
                if remaining is not None and remaining <= 0:
                    raise DeadlineExceeded("The request ran past its processing time limit.")
        except DBAPIError as error:
            if _deadline.get() is not None and _is_interruption(error):
                raise DeadlineExceeded("The request ran past its processing time limit.") from error
            if _is_write_conflict(error):
                log.warning("write_conflict", error=type(error.orig).__name__)
                raise WriteConflict(
                    "The credential store is unavailable; nothing was changed. Retry shortly."
                ) from error
            if _is_unavailability(error):
                # The database is down, unreachable or busy past busy_timeout: nothing was
                # committed, and the caller can retry (the pool reconnects by itself).
                log.warning("store_unavailable", error=type(error.orig).__name__)
                raise StoreUnavailable(
                    "The credential store is unavailable; nothing was changed. Retry shortly."
                ) from error
            raise

    def _arm_deadline(self, conn: Connection) -> None:
        deadline = _deadline.get()
        if deadline is None:
            return
        if self.dialect == "sqlite":
            raw = conn.connection.dbapi_connection
            assert raw is not None

            def interrupt() -> int:
                return 1 if time.monotonic() > deadline else 0

            raw.set_progress_handler(interrupt, _SQLITE_PROGRESS_STEPS)
        elif self.dialect == "postgresql":
            milliseconds = max(1, int((deadline - time.monotonic()) * 1000))
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {milliseconds}")

    def _disarm_deadline(self, conn: Connection) -> None:
        if _deadline.get() is not None and self.dialect == "sqlite":
            raw = conn.connection.dbapi_connection
            if raw is not None:
                raw.set_progress_handler(None, 0)

    def dispose(self) -> None:
        if self._write_turn is not None:
            self._write_turn.close()
        self.engine.dispose()


def pause_after_conflict() -> None:
    """Wait a little before running a deadlock victim again. The survivor was waiting for the
    victim's rows and is woken by its rollback, but must still be scheduled to take them; a
    victim retrying at once can lock its first row again before that and close the same cycle a
    second time (seen in PostgreSQL's log on a loaded machine: both transactions then fail).
    10-30 ms, at random, after a deadlock that has already cost ``deadlock_timeout`` (1 s)."""
    time.sleep(random.uniform(0.01, 0.03))


class WriteTurn:
    """Who writes next to a SQLite file, among keyledger's threads and processes.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps (1, 2,
    5, … up to 100 ms, ``busy_timeout``), while a group commit of another worker holds the lock
    for about a millisecond. keyledger's writers take turns before ``BEGIN IMMEDIATE`` instead:

    * the writers of this process queue on a lock;
    * the *turn* is an advisory ``flock`` of ``<database>-keyledger-lock``;
    * the *gate*, a ``flock`` of ``<database>-keyledger-gate``, says who is next: a writer takes
      the gate, then the turn, then lets go of the gate. A writer waiting for the turn holds the
      gate, so a writer that has just committed cannot take the turn again ahead of it: it
      queues behind, on the gate.

    Two ways to wait. ``held`` (a thread, or a write outside the group writer) looks again every
    half millisecond. ``take_now`` / ``take_later`` (the group writer, ``writer.py``) never make
    the event loop wait: when the turn is not free at once, a helper thread of this
    ``WriteTurn`` waits for it in the kernel (a blocking ``flock``, which lets go of the GIL and
    is woken when the holder lets go) and hands it to the loop with ``call_soon_threadsafe``,
    while the loop keeps serving. Past ``timeout`` (or the request deadline, for ``held``) a
    writer goes ahead without its turn and SQLite's own locking decides, as it does for any
    other program writing the file: the turn only spares SQLite's busy handler, the transaction
    stays SQLite's.
    """

    _POLL_SECONDS = 0.0005

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._gate_path = path.removesuffix("-lock") + "-gate"
        self.timeout = timeout
        self._threads = threading.Lock()
        self._files: tuple[int, int] | None = None  # (gate, turn)
        self._unusable = False  # the lock files cannot be opened (e.g. a read-only directory)
        # The helper thread of ``take_later`` and its queue, under ``_mutex``.
        self._mutex = threading.Lock()
        self._asked = threading.Condition(self._mutex)
        self._requests: deque[TurnRequest] = deque()
        # Requests of ``take_later`` from asking until the turn they got is let go of (or given
        # back by the helper): while there is one, the helper may hold the files' locks, and
        # this process's other writers must neither take them (through the same open files a
        # lock held looks free) nor let go of them (``held``, ``take_now``).
        self._in_flight = 0
        self._helper: threading.Thread | None = None
        self._closed = False

    @contextmanager
    def held(self, remaining: float | None) -> Iterator[None]:
        limit = self.timeout if remaining is None else max(0.0, min(self.timeout, remaining))
        deadline = time.monotonic() + limit
        if not self._threads.acquire(timeout=limit):
            yield
            return
        try:
            # While this process's helper waits for the turn or holds it for a group, the
            # files are not ours to take or let go of: SQLite's own locking decides (and while
            # the helper holds the turn no other process writes anyway).
            locked = not self._in_flight and self._lock_files(deadline)
            try:
                yield
            finally:
                if locked:
                    self._unlock(self._turn_file())
        finally:
            self._threads.release()

    def take_now(self) -> TurnTaken | None:
        """The turn if it is free at once (None if another writer holds it or waits for it);
        ``TurnTaken.release`` gives it back."""
        if self._in_flight:
            # The helper thread waits already (maybe for a request given up since) or holds the
            # turn: queue behind it. Its file handles are ours, so a lock it holds looks free.
            return None
        if not self._threads.acquire(blocking=False):
            return None
        files = self._open()
        if files is None:
            return TurnTaken(self, locked=False)
        gate, turn = files
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._threads.release()
            return None
        try:
            fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._unlock(gate)
            self._threads.release()
            return None
        self._unlock(gate)
        return TurnTaken(self, locked=True)

    def take_later(
        self, loop: asyncio.AbstractEventLoop, handed: Callable[[TurnTaken], None]
    ) -> TurnRequest:
        """Wait for the turn in the helper thread; ``handed(taken)`` runs on ``loop`` once it is
        held (in the order asked). ``TurnRequest.cancel`` withdraws the request."""
        request = TurnRequest(self, loop, handed)
        with self._mutex:
            self._in_flight += 1
            self._requests.append(request)
            if self._helper is None:
                self._helper = threading.Thread(
                    target=self._wait_in_helper, name="keyledger-write-turn", daemon=True
                )
                self._helper.start()
            self._asked.notify()
        return request

    def close(self) -> None:
        """Let the helper thread end once it has nothing to wait for (a thread blocked in
        ``flock`` is a daemon: it never holds up the process's exit, which lets go of the locks
        with the files)."""
        with self._mutex:
            self._closed = True
            self._asked.notify()

    # --- the helper thread ---------------------------------------------------------------------

    def _wait_in_helper(self) -> None:
        try:
            self._serve_requests()
        except BaseException:  # a bug: say so; the next ``take_later`` starts a new helper
            log.exception("write_turn_helper_failed")
            with self._mutex:
                self._helper = None
                for request in self._requests:
                    request.cancelled = True
                    self._in_flight -= 1
                self._requests.clear()
            raise

    def _serve_requests(self) -> None:
        while True:
            with self._mutex:
                while not self._requests:
                    if self._closed:
                        self._helper = None
                        return
                    self._asked.wait()
                request = self._requests[0]
            locked = self._wait_for_files()
            with self._mutex:
                self._requests.popleft()
                request.handed = not request.cancelled
                if not request.handed:  # given up meanwhile: let go of it here
                    if locked:
                        self._unlock_both()
                    self._in_flight -= 1
                    continue
            try:
                request.loop.call_soon_threadsafe(
                    self._hand_over, request, locked, context=contextvars.Context()
                )
            except RuntimeError:  # the loop is closed: nobody will take it
                if locked:
                    self._unlock_both()
                self.let_go_of_request()

    def let_go_of_request(self) -> None:
        """A request of ``take_later`` is over (its turn let go of, or never to be taken)."""
        with self._mutex:
            self._in_flight -= 1

    def _wait_for_files(self) -> bool:
        """Gate, then turn, each a blocking ``flock`` (no GIL held while blocked); the gate is
        let go of on the loop (``_hand_over``), which spares this thread a wait for the GIL
        while it holds the turn."""
        files = self._open()
        if files is None:
            return False
        gate, turn = files
        try:
            fcntl.flock(gate, fcntl.LOCK_EX)
        except OSError:
            return False
        try:
            fcntl.flock(turn, fcntl.LOCK_EX)
        except OSError:
            self._unlock(gate)
            return False
        return True

    def _hand_over(self, request: TurnRequest, locked: bool) -> None:
        """On the requester's loop: the turn is held (``locked``: its files too)."""
        if locked:
            self._unlock(self._gate_file())
        # The writers of this process: none other runs while this loop runs this callback
        # unless another thread is inside ``held``; then both go ahead and SQLite decides.
        threads = self._threads.acquire(blocking=False)
        request.handed_to(TurnTaken(self, locked=locked, threads=threads, asked_later=True))

    # --- files ---------------------------------------------------------------------------------

    def _open(self) -> tuple[int, int] | None:
        if self._files is not None or self._unusable:
            return self._files
        with self._mutex:
            return self._open_once()

    def _open_once(self) -> tuple[int, int] | None:
        if self._files is None and not self._unusable:
            try:
                gate = os.open(self._gate_path, os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    turn = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
                except OSError:
                    os.close(gate)
                    raise
            except OSError:
                self._unusable = True  # e.g. a read-only directory: SQLite's locking alone holds
                return None
            self._files = (gate, turn)
        return self._files

    def _gate_file(self) -> int:
        assert self._files is not None
        return self._files[0]

    def _turn_file(self) -> int:
        assert self._files is not None
        return self._files[1]

    @staticmethod
    def _unlock(file: int) -> None:
        with suppress(OSError):
            fcntl.flock(file, fcntl.LOCK_UN)

    def _unlock_both(self) -> None:
        self._unlock(self._turn_file())
        self._unlock(self._gate_file())

    def _lock_files(self, deadline: float) -> bool:
        """Gate, then turn, looked at every ``_POLL_SECONDS`` until ``deadline``."""
        files = self._open()
        if files is None:
            return False
        gate, turn = files
        gate_held = False
        try:
            while True:
                try:
                    if not gate_held:
                        fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        gate_held = True
                    fcntl.flock(turn, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(self._POLL_SECONDS)
        except OSError:
            return False
        finally:
            if gate_held:
                self._unlock(gate)


class TurnTaken:
    """SQLite's write turn, held until ``release`` (``WriteTurn.take_now``, ``take_later``)."""

    __slots__ = ("_asked_later", "_locked", "_released", "_threads", "_turn")

    def __init__(
        self, turn: WriteTurn, *, locked: bool, threads: bool = True, asked_later: bool = False
    ) -> None:
        self._turn = turn
        self._locked = locked  # the turn's file lock (False: SQLite's locking alone decides)
        self._threads = threads  # the lock of this process's writers
        self._asked_later = asked_later  # handed by the helper (``take_later``)
        self._released = False

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        try:
            if self._locked:
                self._turn._unlock(self._turn._turn_file())
        finally:
            if self._asked_later:
                self._turn.let_go_of_request()
            if self._threads:
                self._turn._threads.release()


class TurnRequest:
    """A wait for the write turn in ``WriteTurn``'s helper thread (``take_later``)."""

    __slots__ = ("_handed_to", "_turn", "cancelled", "handed", "loop")

    def __init__(
        self,
        turn: WriteTurn,
        loop: asyncio.AbstractEventLoop,
        handed_to: Callable[[TurnTaken], None],
    ) -> None:
        self._turn = turn
        self.loop = loop
        self._handed_to = handed_to
        self.cancelled = False
        self.handed = False  # the helper holds the turn for it: ``handed_to`` will run

    def handed_to(self, taken: TurnTaken) -> None:
        self._handed_to(taken)

    def cancel(self) -> bool:
        """Withdraw the request: True if it was (the turn will not be handed to it), False if
        the turn is already on its way (``handed_to`` will run)."""
        with self._turn._mutex:
            if self.handed:
                return False
            self.cancelled = True
            if self in self._turn._requests and self._turn._requests[0] is not self:
                self._turn._requests.remove(self)  # not being waited for yet: over
                self._turn._in_flight -= 1
            return True


_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")


def _is_unavailability(error: DBAPIError) -> bool:
    """The database could not be reached or used right now (not a fault of the statement)."""
    if error.connection_invalidated:
        return True
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        return any(text in str(original).lower() for text in _SQLITE_UNAVAILABLE)
    return isinstance(error, OperationalError)  # PostgreSQL: connection failures


#: PostgreSQL's SQLSTATEs of a transaction aborted to resolve a conflict: serialization_failure,
#: deadlock_detected.
_WRITE_CONFLICTS = {"40001", "40P01"}


def _is_write_conflict(error: DBAPIError) -> bool:
    return getattr(error.orig, "sqlstate", None) in _WRITE_CONFLICTS


def _is_interruption(error: DBAPIError) -> bool:
    original = error.orig
    if isinstance(original, sqlite3.OperationalError):
        return "interrupted" in str(original)
    return type(original).__name__ == "QueryCanceled"


def build_engine(settings: Settings) -> Engine:
    url = settings.database_url
    if url.startswith("sqlite"):
        in_memory = url in {"sqlite://", "sqlite:///:memory:"} or "mode=memory" in url
        pool: dict[str, Any] = (
            {} if in_memory else {"pool_size": settings.database_pool_size, "max_overflow": 10}
        )
        engine = create_engine(
            url,
            connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
            hide_parameters=True,  # no database error may print a statement's values
            **pool,
        )
        _configure_sqlite(engine, settings)
        return engine
    connect_args: dict[str, Any] = {}
    if url.startswith("postgresql"):
        connect_args["connect_timeout"] = settings.database_connect_timeout_seconds
        connect_args["application_name"] = "keyledger"
    return create_engine(
        url,
        pool_size=settings.database_pool_size,
        max_overflow=10,
        pool_pre_ping=True,
        hide_parameters=True,  # no database error may print a statement's values
        pool_timeout=settings.database_connect_timeout_seconds,
        connect_args=connect_args,
    )


def _configure_sqlite(engine: Engine, settings: Settings) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # Hand transaction control to SQLAlchemy's "begin" event below.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
            cursor.execute(f"PRAGMA busy_timeout={int(settings.sqlite_busy_timeout_ms)}")
            cursor.execute("PRAGMA foreign_keys=ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get("keyledger_write"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")
