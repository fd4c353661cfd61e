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

import fcntl
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: atomic, serialised against other writers on SQLite."""
        if self._write_turn is None:
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
        self.engine.dispose()


class WriteTurn:
    """Who writes next to a SQLite file, among keyledger's threads and processes.

    SQLite lets one writer in at a time and makes the others poll with growing sleeps (1, 2,
    5, … up to 100 ms, ``busy_timeout``), while a group commit of another worker holds the lock
    for about a millisecond. Writers of this process queue on a lock; writers of other
    keyledger processes on an advisory ``flock`` of ``<database>-keyledger-lock``, polled every
    half millisecond. Past ``timeout`` (or the request deadline) the writer goes ahead and
    SQLite's own locking decides, as it does for any other program writing the file.
    """

    _POLL_SECONDS = 0.0005

    def __init__(self, path: str, timeout: float) -> None:
        self._path = path
        self._timeout = timeout
        self._threads = threading.Lock()
        self._file: int | None = None

    @contextmanager
    def held(self, remaining: float | None) -> Iterator[None]:
        limit = self._timeout if remaining is None else max(0.0, min(self._timeout, remaining))
        deadline = time.monotonic() + limit
        if not self._threads.acquire(timeout=limit):
            yield
            return
        try:
            locked = self._lock_file(deadline)
            try:
                yield
            finally:
                if locked and self._file is not None:
                    fcntl.flock(self._file, fcntl.LOCK_UN)
        finally:
            self._threads.release()

    def _lock_file(self, deadline: float) -> bool:
        try:
            if self._file is None:
                self._file = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            while True:
                try:
                    fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    return True
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        return False
                    time.sleep(self._POLL_SECONDS)
        except OSError:
            return False  # e.g. a read-only directory: SQLite's locking alone still holds


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
