"""SQLite connection settings and write transactions; deadlock victims run again."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import Connection, text

from keyledger.kit.settings import Settings
from keyledger.store import Store
from tests.support import DatabaseFactory


def test_sqlite_pragmas_and_immediate_writes(sqlite_databases: DatabaseFactory) -> None:
    store = Store(Settings(database_url=sqlite_databases.new_url(), sqlite_busy_timeout_ms=1234))
    try:
        with store.read() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar_one() == 1  # NORMAL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar_one() == 1234
        with store.write() as conn:
            # Inside BEGIN IMMEDIATE this connection holds the write lock already.
            raw = conn.connection.dbapi_connection
            assert raw is not None
            assert raw.in_transaction
    finally:
        store.dispose()


def test_postgres_urls_use_psycopg() -> None:
    assert (
        Settings(database_url="postgresql://u@h/db").database_url == "postgresql+psycopg://u@h/db"
    )
    assert Settings(database_url="postgres://u@h/db").database_url == "postgresql+psycopg://u@h/db"


def test_a_deadlock_victim_runs_once_more(databases: DatabaseFactory) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL aborts one as the deadlock
    victim; ``write_retrying`` runs it again, so both writes are kept (SQLite serialises the
    two transactions: no deadlock to begin with)."""
    store = Store(Settings(database_url=databases.new_url()))
    try:
        with store.write() as conn:
            for name in ("first", "second"):
                conn.execute(
                    text("INSERT INTO store_marks (name, created_utc) VALUES (:n, :t)"),
                    {"n": name, "t": "2030-01-01 00:00:00"},
                )
        both_locked_one = threading.Barrier(2)
        runs: list[str] = []

        def work(order: tuple[str, str], label: str) -> str:
            def run(conn: Connection) -> str:
                runs.append(label)
                touch = text("UPDATE store_marks SET name = name WHERE name = :n")
                conn.execute(touch, {"n": order[0]})
                if runs.count(label) == 1 and store.dialect == "postgresql":
                    both_locked_one.wait(timeout=30)  # each holds its first row now
                conn.execute(touch, {"n": order[1]})
                return label

            return store.write_retrying(run)

        with ThreadPoolExecutor(max_workers=2) as pool:
            done = pool.map(
                work, [("first", "second"), ("second", "first")], ["forwards", "backwards"]
            )
            assert sorted(done) == ["backwards", "forwards"]
        expected = 3 if store.dialect == "postgresql" else 2  # the victim ran twice
        assert len(runs) == expected
    finally:
        store.dispose()
