"""SQLite connection settings and write transactions."""

from __future__ import annotations

from sqlalchemy import text

from keyledger.settings import Settings
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
