"""SQL for NAS records and their accounting sessions."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from keyledger.store.schema import (
    credentials,
    hotspot_sessions,
    nas_clients,
    properties,
    radius_sessions,
)

n = nas_clients
r = radius_sessions


def insert_nas(conn: Connection, **columns: Any) -> int:
    return int(conn.execute(insert(n).returning(n.c.id), columns).scalar_one())


def all_nas(conn: Connection) -> list[Any]:
    return list(
        conn.execute(
            select(n, properties.c.business_id)
            .join(properties, properties.c.id == n.c.property_id)
            .order_by(n.c.id)
        )
    )


def nas_networks(conn: Connection) -> list[Any]:
    """Every NAS's id, network and business (no secret)."""
    return list(
        conn.execute(
            select(n.c.id, n.c.address, properties.c.business_id)
            .join(properties, properties.c.id == n.c.property_id)
            .order_by(n.c.id)
        )
    )


def delete_nas(conn: Connection, nas_id: int) -> bool:
    conn.execute(delete(r).where(r.c.nas_id == nas_id))
    return bool(conn.execute(delete(n).where(n.c.id == nas_id)).rowcount)


# Every Accounting-Request runs these: built once (building costs more than running).
_ACCOUNTING_SESSION = (
    select(r.c.id, r.c.session_uid, r.c.session_time, r.c.stopped)
    .where(r.c.nas_id == bindparam("nas_id"), r.c.acct_session_id == bindparam("acct_id"))
    .with_for_update()
)
_UPDATE_ACCOUNTING = (
    update(r)
    .where(r.c.id == bindparam("row_id"))
    .values(
        session_time=bindparam("counted"),  # a column's name is reserved in UPDATE
        stopped=bindparam("is_stopped"),
        updated_utc=bindparam("now"),
    )
)


def accounting_session(conn: Connection, *, nas_id: int, acct_session_id: str) -> Any:
    return conn.execute(_ACCOUNTING_SESSION, {"nas_id": nas_id, "acct_id": acct_session_id}).first()


def insert_accounting_session(conn: Connection, **columns: Any) -> int:
    return int(conn.execute(insert(r).returning(r.c.id), columns).scalar_one())


def update_accounting_session(
    conn: Connection, *, row_id: int, session_time: int, stopped: bool, now: datetime
) -> None:
    conn.execute(
        _UPDATE_ACCOUNTING,
        {"row_id": row_id, "counted": session_time, "is_stopped": stopped, "now": now},
    )


def pending_disconnects(
    conn: Connection, *, withdrawn: frozenset[str], now: datetime, limit: int, claim: bool
) -> list[Any]:
    """Open accounting sessions (no Stop, no settled Disconnect) whose hotspot session a
    withdrawal ended, due now; locked and skipped by other workers where the database can."""
    query = (
        select(
            r.c.id,
            r.c.nas_id,
            r.c.nas_address,
            r.c.session_uid,
            r.c.acct_session_id,
            r.c.user_name,
            r.c.calling_station_id,
            r.c.disconnect_attempts,
            credentials.c.property_id,
            credentials.c.uid.label("credential_uid"),
            hotspot_sessions.c.end_reason,
        )
        .join(hotspot_sessions, hotspot_sessions.c.uid == r.c.session_uid)
        .join(credentials, credentials.c.id == hotspot_sessions.c.credential_id)
        .where(
            r.c.stopped.is_(False),
            r.c.disconnect_outcome.is_(None),
            hotspot_sessions.c.end_reason.in_(sorted(withdrawn)),
            (r.c.disconnect_after_utc.is_(None)) | (r.c.disconnect_after_utc <= now),
        )
        .order_by(r.c.id)
        .limit(limit)
    )
    if claim:
        query = query.with_for_update(of=r, skip_locked=True)
    return list(conn.execute(query))


def claim_disconnects(conn: Connection, *, row_ids: list[int], after: datetime) -> None:
    conn.execute(
        update(r)
        .where(r.c.id.in_(row_ids))
        .values(disconnect_attempts=r.c.disconnect_attempts + 1, disconnect_after_utc=after)
    )


def settle_disconnect(conn: Connection, *, row_id: int, outcome: str, now: datetime) -> bool:
    """Record the outcome once: False when another worker settled it first."""
    return bool(
        conn.execute(
            update(r)
            .where(r.c.id == row_id, r.c.disconnect_outcome.is_(None))
            .values(disconnect_outcome=outcome, updated_utc=now)
        ).rowcount
    )


_SESSION_OWNER = (
    select(
        credentials.c.property_id,
        hotspot_sessions.c.credential_id,
        hotspot_sessions.c.device_id,
    )
    .join(hotspot_sessions, hotspot_sessions.c.credential_id == credentials.c.id)
    .where(hotspot_sessions.c.uid == bindparam("session_uid"))
)
_BOUND = (
    select(r.c.acct_session_id)
    .where(
        r.c.nas_id == bindparam("nas_id"),
        r.c.session_uid == bindparam("session_uid"),
        r.c.stopped.is_(False),
    )
    .limit(1)
)


def session_owner(conn: Connection, *, session_uid: UUID) -> Any:
    """A hotspot session's property, voucher (``credential_id``) and ``device_id``; None if no
    such session."""
    return conn.execute(_SESSION_OWNER, {"session_uid": session_uid}).first()


def bound_acct_session_id(conn: Connection, *, nas_id: int, session_uid: UUID) -> str | None:
    """The Acct-Session-Id of this NAS already counting a hotspot session (not stopped)."""
    found = conn.execute(_BOUND, {"nas_id": nas_id, "session_uid": session_uid}).first()
    return None if found is None else str(found[0])


def open_accounting_sessions(conn: Connection, *, nas_id: int, nas_address: str) -> list[Any]:
    """The accounting sessions (no Stop) of a NAS's device at ``nas_address``, locked, with
    their hotspot session's ``ended_utc`` (and ``hotspot_session_id``, None if it is gone)."""
    return list(
        conn.execute(
            select(
                r.c.id,
                r.c.session_uid,
                hotspot_sessions.c.id.label("hotspot_session_id"),
                hotspot_sessions.c.ended_utc,
            )
            .join(hotspot_sessions, hotspot_sessions.c.uid == r.c.session_uid, isouter=True)
            .where(r.c.nas_id == nas_id, r.c.nas_address == nas_address, r.c.stopped.is_(False))
            .order_by(r.c.id)
            .with_for_update(of=r)
        )
    )


def stop_accounting_sessions(conn: Connection, *, row_ids: list[int], now: datetime) -> None:
    if row_ids:
        conn.execute(update(r).where(r.c.id.in_(row_ids)).values(stopped=True, updated_utc=now))
