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


# Every Accounting-Request runs these: built once (building costs more than running). A row is one
# connection — a NAS record's device (``nas_address``, a record may be a network of several) and
# its Acct-Session-Id (migration 0014) — and one hotspot session on it (0016: an id reused for a
# new session keeps the earlier session's count in a row of its own).
_CONNECTION_ROWS = (
    select(
        r.c.id,
        r.c.session_uid,
        r.c.session_time,
        r.c.stopped,
        r.c.calling_station_id,
        hotspot_sessions.c.credential_id,
    )
    .join(hotspot_sessions, hotspot_sessions.c.uid == r.c.session_uid, isouter=True)
    .where(
        r.c.nas_id == bindparam("nas_id"),
        r.c.nas_address == bindparam("nas_address"),
        r.c.acct_session_id == bindparam("acct_id"),
    )
)
_LATEST_ROW = _CONNECTION_ROWS.order_by(r.c.id.desc()).limit(1)
_SESSION_ROW = _CONNECTION_ROWS.where(r.c.session_uid == bindparam("session_uid"))
_SESSION_ROW_LOCKED = _SESSION_ROW.with_for_update(of=r)
_UPDATE_ACCOUNTING = (
    update(r)
    .where(r.c.id == bindparam("row_id"))
    .values(
        session_time=bindparam("counted"),  # a column's name is reserved in UPDATE
        stopped=bindparam("is_stopped"),
        updated_utc=bindparam("now"),
    )
)
_OTHER_LIVE = (
    select(r.c.id)
    .where(
        r.c.session_uid == bindparam("session_uid"),
        r.c.id != bindparam("row_id"),
        r.c.stopped.is_(False),
        r.c.updated_utc >= bindparam("since"),
    )
    .limit(1)
)


def accounting_session(
    conn: Connection,
    *,
    nas_id: int,
    nas_address: str,
    acct_session_id: str,
    session_uid: UUID | None = None,
    lock: bool = False,
) -> Any:
    """The connection's row for ``session_uid`` (None: the newest of its rows, the session that
    last took up the id), with its hotspot session's voucher (``credential_id``, None if the
    session is gone); ``lock`` (with a ``session_uid``): ``FOR UPDATE`` of the row (take its
    voucher's lock first)."""
    params: dict[str, Any] = {
        "nas_id": nas_id,
        "nas_address": nas_address,
        "acct_id": acct_session_id,
    }
    if session_uid is None:
        return conn.execute(_LATEST_ROW, params).first()
    query = _SESSION_ROW_LOCKED if lock else _SESSION_ROW
    return conn.execute(query, {**params, "session_uid": session_uid}).first()


def stop_accounting_session(
    conn: Connection,
    *,
    nas_id: int,
    nas_address: str,
    acct_session_id: str,
    session_uid: UUID,
    now: datetime,
) -> None:
    """Mark the row of ``session_uid`` under this connection's Acct-Session-Id stopped (a Stop
    that counts nothing: its session has ended), if there is one."""
    conn.execute(
        update(r)
        .where(
            r.c.nas_id == nas_id,
            r.c.nas_address == nas_address,
            r.c.acct_session_id == acct_session_id,
            r.c.session_uid == session_uid,
            r.c.stopped.is_(False),
        )
        .values(stopped=True, updated_utc=now)
    )


def other_live_connection(
    conn: Connection, *, session_uid: UUID, row_id: int, since: datetime
) -> bool:
    """Whether another connection (any NAS) on this hotspot session has no Stop and reported
    at or after ``since``."""
    params = {"session_uid": session_uid, "row_id": row_id, "since": since}
    return conn.execute(_OTHER_LIVE, params).first() is not None


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
    withdrawal ended, due now; locked and skipped by other workers where the database can.
    Only the newest row of a connection's Acct-Session-Id: once the NAS took the id up again for
    another session, a Disconnect-Request naming it would name that session (a NAS matching on
    Acct-Session-Id would end the wrong guest's connection), and the earlier one is gone."""
    newer = r.alias("newer")
    taken_up_again = (
        select(newer.c.id)
        .where(
            newer.c.nas_id == r.c.nas_id,
            newer.c.nas_address == r.c.nas_address,
            newer.c.acct_session_id == r.c.acct_session_id,
            newer.c.id > r.c.id,
        )
        .exists()
    )
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
            ~taken_up_again,
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
        hotspot_sessions.c.ended_utc,
    )
    .join(hotspot_sessions, hotspot_sessions.c.credential_id == credentials.c.id)
    .where(hotspot_sessions.c.uid == bindparam("session_uid"))
)


def session_owner(conn: Connection, *, session_uid: UUID) -> Any:
    """A hotspot session's property, voucher (``credential_id``), ``device_id`` and
    ``ended_utc``; None if no such session."""
    return conn.execute(_SESSION_OWNER, {"session_uid": session_uid}).first()


def open_accounting_sessions(
    conn: Connection, *, nas_id: int, nas_address: str, before: datetime, lock: bool
) -> list[Any]:
    """The accounting sessions (no Stop) of a NAS's device at ``nas_address`` last updated
    before ``before``, with their hotspot session's voucher (``credential_id``), ``ended_utc``
    (and ``hotspot_session_id``, None if it is gone); ``lock``: ``FOR UPDATE`` of the rows."""
    query = (
        select(
            r.c.id,
            r.c.session_uid,
            hotspot_sessions.c.id.label("hotspot_session_id"),
            hotspot_sessions.c.credential_id,
            hotspot_sessions.c.ended_utc,
        )
        .join(hotspot_sessions, hotspot_sessions.c.uid == r.c.session_uid, isouter=True)
        .where(
            r.c.nas_id == nas_id,
            r.c.nas_address == nas_address,
            r.c.stopped.is_(False),
            r.c.updated_utc < before,
        )
        .order_by(r.c.id)
    )
    if lock:
        query = query.with_for_update(of=r)
    return list(conn.execute(query))


def stop_accounting_sessions(conn: Connection, *, row_ids: list[int], now: datetime) -> None:
    if row_ids:
        conn.execute(update(r).where(r.c.id.in_(row_ids)).values(stopped=True, updated_utc=now))
