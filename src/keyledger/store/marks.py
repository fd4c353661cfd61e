"""Marks of one-off provisioning (``store_marks``): a restart never repeats what a mark names."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select

from keyledger.store.schema import store_marks


def has_mark(conn: Connection, name: str) -> bool:
    return (
        conn.execute(select(store_marks.c.name).where(store_marks.c.name == name)).first()
        is not None
    )


def set_mark(conn: Connection, name: str, *, now: datetime) -> None:
    conn.execute(insert(store_marks), {"name": name, "created_utc": now})
