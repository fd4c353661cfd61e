"""SQL for hotspot sessions and the atomic consumption of a voucher's minutes."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    BigInteger,
    Connection,
    bindparam,
    case,
    insert,
    literal_column,
    select,
    update,
)

from keyledger.domain.credentials.models import CredentialKind
from keyledger.kit.inputs import code_key
from keyledger.store.direct import Direct, DirectIn
from keyledger.store.schema import credentials, hotspot_sessions

s = hotspot_sessions
c = credentials


# A start's voucher: one statement per code, each an equality on the live-voucher key's index.
# Not one statement for a group's codes: PostgreSQL 15 plans ``code_key IN (...)`` (and an
# unnest join) as a walk of every live voucher of the property or through the trigram index,
# 10-25 ms at 20,000 vouchers against 0.1 ms (benchmarks/README.md, "a group's starts as one
# batch"). Row locks need no order among start groups: their vouchers' advisory locks are taken
# first (``start_locks``).
_LIVE_VOUCHER = Direct(
    select(
        c.c.id,
        c.c.uid,
        c.c.valid_from,
        c.c.valid_to,
        c.c.minutes_left,
        c.c.usage_seconds,
        c.c.user_limit,
        c.c.code_key,
    )
    .where(
        c.c.property_id == bindparam("property_id"),
        # the kind inline in the SQL (the partial index's predicate), rendered when built
        c.c.kind == literal_column(f"'{CredentialKind.VOUCHER.value}'"),
        c.c.deleted_utc.is_(None),
        c.c.code_key == bindparam("code_key"),
    )
    .with_for_update()
)
# (``Direct``: run on the driver's cursor, compiled once; store/direct.py.)


def live_vouchers(conn: Connection, *, property_id: int, codes: list[str]) -> dict[str, Any]:
    """The live voucher of each code (the same under ``code_key``; a phone keyboard adds a
    space), locked for the transaction where the database can: the rows by ``code_key`` (codes
    with no live voucher are missing)."""
    found = {}
    for key in dict.fromkeys(code_key(code.strip()) for code in codes):
        row = _LIVE_VOUCHER.first(conn, {"property_id": property_id, "code_key": key})
        if row is not None:
            found[key] = row
    return found


def live_voucher(conn: Connection, *, property_id: int, code: str) -> Any:
    """The live voucher with this code (``live_vouchers``), or None."""
    return live_vouchers(conn, property_id=property_id, codes=[code]).get(code_key(code.strip()))


def lock_voucher(conn: Connection, *, credential_id: int) -> None:
    """Lock a voucher's row for the transaction where the database can (``FOR UPDATE``)."""
    conn.execute(select(c.c.id).where(c.c.id == credential_id).with_for_update()).first()


_OPEN_DEVICES = select(s.c.id, s.c.uid, s.c.device_id).where(
    s.c.credential_id == bindparam("credential_id"),
    s.c.ended_utc.is_(None),
    s.c.last_report_utc > bindparam("idle_since"),
)
_END_IDLE = Direct(
    update(s)
    .where(
        s.c.credential_id == bindparam("voucher_id"),  # a column's name is reserved in UPDATE
        s.c.ended_utc.is_(None),
        s.c.last_report_utc <= bindparam("idle_since"),
    )
    .values(ended_utc=bindparam("now"))
)


# The open sessions of a group's vouchers, in one statement.
_OPEN_SESSIONS_OF = DirectIn(
    s.c.credential_id,
    lambda voucher_in: (
        select(s.c.id, s.c.uid, s.c.device_id, s.c.credential_id, s.c.last_report_utc)
        .where(voucher_in, s.c.ended_utc.is_(None))
        .order_by(s.c.id)
    ),
    prefix="voucher",
)


def open_sessions_of(conn: Connection, *, credential_ids: list[int]) -> dict[int, list[Any]]:
    """Every open session (``ended_utc`` null, idle or not) of these vouchers, by voucher, in
    creation order; ``last_report_utc`` says whether it is idle."""
    found: dict[int, list[Any]] = {credential_id: [] for credential_id in credential_ids}
    if credential_ids:
        for row in _OPEN_SESSIONS_OF.all(conn, {}, credential_ids):
            found[row.credential_id].append(row)
    return found


def open_devices(conn: Connection, *, credential_id: int, idle_since: datetime) -> dict[str, Any]:
    """Open sessions (ended never, reported after ``idle_since``) by device."""
    rows = conn.execute(_OPEN_DEVICES, {"credential_id": credential_id, "idle_since": idle_since})
    return {row.device_id: row for row in rows}


def end_idle(conn: Connection, *, credential_id: int, idle_since: datetime, now: datetime) -> int:
    return _END_IDLE.rowcount(
        conn, {"voucher_id": credential_id, "idle_since": idle_since, "now": now}
    )


_INSERT_SESSION = Direct(
    insert(s), keys=["uid", "credential_id", "device_id", "started_utc", "last_report_utc"]
)


def insert_sessions(conn: Connection, rows: list[tuple[UUID, int, str]], *, now: datetime) -> None:
    """Open sessions (uid, voucher id, device) started ``now``, in one driver call."""
    _INSERT_SESSION.execute_many(
        conn,
        [
            {
                "uid": uid,
                "credential_id": credential_id,
                "device_id": device_id,
                "started_utc": now,
                "last_report_utc": now,
            }
            for uid, credential_id, device_id in rows
        ],
    )


def touch_many(conn: Connection, session_ids: list[int], *, now: datetime) -> None:
    """``touch`` (not ending) several sessions, in one driver call."""
    _TOUCH_DIRECT.execute_many(conn, [{"session_id": i, "now": now} for i in session_ids])


# Usage reports run these on every request: built once (building costs more than running).
_SESSION = (
    select(
        s.c.id,
        s.c.uid,
        s.c.credential_id,
        s.c.device_id,
        s.c.ended_utc,
        s.c.end_reason,
        s.c.last_report_utc,
        c.c.uid.label("credential_uid"),
        c.c.property_id,
        c.c.valid_from,
        c.c.valid_to,
        c.c.deleted_utc,
        c.c.minutes_left,
        c.c.usage_seconds,
    )
    .join(c, c.c.id == s.c.credential_id)
    .where(
        s.c.uid == bindparam("uid"), c.c.property_id.in_(bindparam("property_ids", expanding=True))
    )
)
_TOUCH = update(s).where(s.c.id == bindparam("session_id")).values(last_report_utc=bindparam("now"))
_TOUCH_AND_END = _TOUCH.values(ended_utc=bindparam("now"))
_TOUCH_DIRECT = Direct(_TOUCH)
# BIGINT: PostgreSQL would cast the seconds to INTEGER, and a voucher's balance in seconds
# (up to MINUTES_MAX * 60) does not fit one.
_TOTAL = c.c.usage_seconds + bindparam("seconds", type_=BigInteger)
_WHOLE = c.c.minutes_left - _TOTAL // 60
_CONSUME = (
    update(c)
    .where(c.c.id == bindparam("credential_id"))
    .values(
        minutes_left=case((_WHOLE < 0, 0), else_=_WHOLE),
        usage_seconds=case((_WHOLE < 0, 0), else_=_TOTAL % 60),
        last_access=bindparam("now"),
    )
)
_BALANCE = select(c.c.minutes_left, c.c.usage_seconds).where(c.c.id == bindparam("credential_id"))


def session(conn: Connection, *, uid: UUID, property_ids: list[int]) -> Any:
    return conn.execute(_SESSION, {"uid": uid, "property_ids": property_ids}).first()


def touch(
    conn: Connection, *, session_id: int, now: datetime, end: bool, reason: str | None = None
) -> None:
    if end:
        conn.execute(
            _TOUCH_AND_END.values(end_reason=reason), {"session_id": session_id, "now": now}
        )
    else:
        _TOUCH_DIRECT.rowcount(conn, {"session_id": session_id, "now": now})


def end_open(conn: Connection, *, credential_id: int, reason: str, now: datetime) -> list[UUID]:
    """End every open session of a voucher at once, recording why; their uids."""
    ended = [
        row[0]
        for row in conn.execute(
            select(s.c.uid).where(s.c.credential_id == credential_id, s.c.ended_utc.is_(None))
        )
    ]
    if ended:
        conn.execute(
            update(s)
            .where(s.c.credential_id == credential_id, s.c.ended_utc.is_(None))
            .values(ended_utc=now, end_reason=reason)
        )
    return ended


def consume(
    conn: Connection, *, credential_id: int, seconds: int, now: datetime
) -> tuple[int, int]:
    """Take ``seconds`` off a voucher in one statement, so concurrent reports never lose one;
    minutes left never go below 0. Returns (minutes_left, usage_seconds) afterwards."""
    conn.execute(_CONSUME, {"credential_id": credential_id, "seconds": seconds, "now": now})
    row = conn.execute(_BALANCE, {"credential_id": credential_id}).one()
    return int(row[0] or 0), int(row[1] or 0)


_MARK_ACCESS = Direct(
    update(c).where(c.c.id == bindparam("credential_id")).values(last_access=bindparam("now"))
)


def mark_access_many(conn: Connection, credential_ids: list[int], *, now: datetime) -> None:
    """``mark_access`` for several vouchers, in one driver call."""
    _MARK_ACCESS.execute_many(conn, [{"credential_id": i, "now": now} for i in credential_ids])
