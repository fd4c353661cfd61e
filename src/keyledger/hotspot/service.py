"""Rules for hotspot sessions. A voucher lets a device online while it is valid, has minutes
left, and fewer than ``UserLimit`` other devices (null: 1) are online with it; the same device
logging in again gets its session back. Usage reports take minutes off atomically."""

from __future__ import annotations

import uuid
from datetime import timedelta
from uuid import UUID

from sqlalchemy import Connection

from keyledger.callers.models import Actor, Scope
from keyledger.clock import utc_now
from keyledger.errors import InvalidInput, OutOfScope, RuleViolation, SessionNotFound
from keyledger.events import repository as events
from keyledger.events.models import EventKind
from keyledger.hotspot import repository
from keyledger.hotspot.models import SessionDecision, SessionReason, Usage


def _seconds_left(minutes_left: int | None, usage_seconds: int | None) -> int:
    return max(0, (minutes_left or 0) * 60 - (usage_seconds or 0))


def start_session(
    conn: Connection,
    *,
    scope: Scope,
    actor: Actor,
    business_id: int,
    access_code: str,
    device_id: str,
    idle_seconds: int,
) -> SessionDecision:
    """May a device go online with this voucher? Runs in the caller's write transaction (the API
    hands it to the group writer)."""
    target = scope.by_business.get(business_id)
    if target is None:
        raise OutOfScope(
            f"Business {business_id} is outside the token's scope.", subject="business"
        )
    now = utc_now()
    idle_since = now - timedelta(seconds=idle_seconds)
    voucher = repository.live_voucher(conn, property_id=target.id, code=access_code)
    session_uid: UUID | None = None
    if voucher is None:
        reason, seconds_left, minutes_left = SessionReason.UNKNOWN_CREDENTIAL, 0, 0
    else:
        minutes_left = int(voucher.minutes_left or 0)
        seconds_left = _seconds_left(voucher.minutes_left, voucher.usage_seconds)
        repository.end_idle(conn, credential_id=voucher.id, idle_since=idle_since, now=now)
        online = repository.open_devices(conn, credential_id=voucher.id, idle_since=idle_since)
        if voucher.valid_from is not None and now < voucher.valid_from:
            reason = SessionReason.NOT_YET_VALID
        elif voucher.valid_to is not None and now >= voucher.valid_to:
            reason = SessionReason.EXPIRED
        elif seconds_left <= 0:
            reason = SessionReason.NO_MINUTES_LEFT
        elif device_id in online:
            reason, session_uid = SessionReason.GRANTED, online[device_id].uid
            repository.touch(conn, session_id=online[device_id].id, now=now, end=False)
        elif len(online) >= (voucher.user_limit or 1):
            reason = SessionReason.TOO_MANY_DEVICES
        else:
            reason, session_uid = SessionReason.GRANTED, uuid.uuid4()
            repository.insert_session(
                conn, uid=session_uid, credential_id=voucher.id, device_id=device_id, now=now
            )
        if reason is SessionReason.GRANTED:
            repository.mark_access(conn, credential_id=voucher.id, now=now)
    events.append(
        conn,
        kind=EventKind.HOTSPOT_SESSION_STARTED,
        actor=actor,
        now=now,
        property_id=target.id,
        credential_uid=None if voucher is None else voucher.uid,
        outcome=reason.value,
        details={
            "DeviceId": device_id,
            "SessionId": None if session_uid is None else str(session_uid),
        },
    )
    return SessionDecision(
        granted=reason is SessionReason.GRANTED,
        reason=reason,
        session_uid=session_uid,
        credential_uid=None if voucher is None else voucher.uid,
        seconds_left=seconds_left if reason is SessionReason.GRANTED else 0,
        minutes_left=minutes_left,
    )


def report_usage(
    conn: Connection,
    *,
    scope: Scope,
    actor: Actor,
    session_uid: UUID,
    elapsed_seconds: int,
    end: bool,
    idle_seconds: int,
) -> Usage:
    """Take ``elapsed_seconds`` off the session's voucher; ``end`` closes the session. A session
    ends by itself when the voucher runs out of minutes. Runs in the caller's write transaction."""
    if not 0 <= elapsed_seconds <= 86_400:
        raise InvalidInput("ElapsedSeconds is between 0 and 86400.", subject="elapsed")
    now = utc_now()
    found = repository.session(conn, uid=session_uid, property_ids=scope.property_ids)
    if found is None:
        raise SessionNotFound(f"No session {session_uid} in scope.", subject="session")
    if conn.dialect.name == "postgresql":
        # Every write of a voucher's sessions holds the voucher's row first (start_session locks
        # it too): lock it, then read the session again, so a concurrent end or usage report of
        # this session is seen (one order, voucher then session: no deadlock). SQLite's write
        # lock serialises these transactions already.
        repository.lock_voucher(conn, credential_id=found.credential_id)
        found = repository.session(conn, uid=session_uid, property_ids=scope.property_ids)
    idle = found.last_report_utc <= now - timedelta(seconds=idle_seconds)
    if found.ended_utc is not None or idle:
        raise RuleViolation(f"Session {session_uid} has ended; start a new one.", subject="session")
    minutes_left, usage_seconds = repository.consume(
        conn, credential_id=found.credential_id, seconds=elapsed_seconds, now=now
    )
    seconds_left = _seconds_left(minutes_left, usage_seconds)
    ended = end or seconds_left <= 0
    repository.touch(conn, session_id=found.id, now=now, end=ended)
    events.append(
        conn,
        kind=EventKind.HOTSPOT_SESSION_ENDED if ended else EventKind.HOTSPOT_USAGE,
        actor=actor,
        now=now,
        property_id=found.property_id,
        credential_uid=found.credential_uid,
        details={
            "SessionId": str(session_uid),
            "Seconds": elapsed_seconds,
            "MinutesLeft": minutes_left,
        },
    )
    return Usage(
        session_uid=session_uid, seconds_left=seconds_left, minutes_left=minutes_left, ended=ended
    )
