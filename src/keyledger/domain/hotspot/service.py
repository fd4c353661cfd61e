"""Rules for hotspot sessions. A voucher lets a device online while it is valid, has minutes
left, and fewer than ``UserLimit`` other devices (null: 1) are online with it; the same device
logging in again gets its session back. Usage reports take minutes off atomically.

A voucher withdrawn — deleted, expired (EXPIRE_NOW, or its validity over), out of minutes — ends
its open sessions at once, in the transaction that withdraws it, recording why (``end_reason``):
the next usage report of such a session answers ``Ended`` with that reason and takes nothing.
Refused starts count against the guessing budgets (``domain/guessing/service.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.credentials.models import Credential
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget, Guesser, Pool
from keyledger.domain.hotspot import repository
from keyledger.domain.hotspot.models import MISSES, EndReason, SessionDecision, SessionReason, Usage
from keyledger.domain.properties.models import Scope
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import InvalidInput, OutOfScope, RuleViolation, SessionNotFound
from keyledger.kit.inputs import code_key
from keyledger.store.locks import advisory_key, hold_now


def _seconds_left(minutes_left: int | None, usage_seconds: int | None) -> int:
    return max(0, (minutes_left or 0) * 60 - (usage_seconds or 0))


def withdrawal(
    *,
    valid_from: datetime | None,
    valid_to: datetime | None,
    deleted: bool,
    minutes_left: int | None,
    usage_seconds: int | None,
    now: datetime,
) -> EndReason | None:
    """Why a voucher in this state can keep no device online; None if it still can."""
    if deleted:
        return EndReason.DELETED
    if valid_to is not None and now >= valid_to:
        return EndReason.EXPIRED
    if valid_from is not None and now < valid_from:
        return EndReason.NOT_YET_VALID
    if _seconds_left(minutes_left, usage_seconds) <= 0:
        return EndReason.NO_MINUTES_LEFT
    return None


def end_sessions(
    conn: Connection,
    *,
    credential_id: int,
    credential_uid: UUID,
    property_id: int,
    reason: EndReason,
    actor: Actor,
    now: datetime,
) -> list[UUID]:
    """End a withdrawn voucher's open sessions now, with a ``hotspot.session_ended`` event each
    (the signal a RADIUS disconnect would act on)."""
    ended = repository.end_open(conn, credential_id=credential_id, reason=reason.value, now=now)
    events.append_many(
        conn,
        [
            records.hotspot_session_ended(
                property_id=property_id,
                credential_uid=credential_uid,
                session_uid=uid,
                reason=reason.value,
            )
            for uid in ended
        ],
        actor=actor,
        now=now,
    )
    return ended


def end_withdrawn_sessions(
    conn: Connection, vouchers: Sequence[Credential], *, actor: Actor, now: datetime
) -> None:
    """The ``on_withdrawal`` hook of ``credentials.vouchers``' rewrites: in the transaction that
    changed ``vouchers``, end the sessions of each one the change withdrew (``end_sessions``, the
    one place sessions of a withdrawn voucher end)."""
    for c in vouchers:  # a withdrawn voucher's devices go offline now (docs/access.md)
        reason = withdrawal(
            valid_from=c.valid_from,
            valid_to=c.valid_to,
            deleted=c.deleted_utc is not None,
            minutes_left=c.minutes_left,
            usage_seconds=0,  # below a minute: minutes_left alone says whether any is left
            now=now,
        )
        if reason is not None:
            end_sessions(
                conn,
                credential_id=c.id,
                credential_uid=c.uid,
                property_id=c.property.id,
                reason=reason,
                actor=actor,
                now=now,
            )


def start_locks(scope: Scope, *, business_id: int, access_code: str) -> list[int]:
    """The advisory lock a start declares to the group writer: its voucher's (by code), so two
    workers' groups starting the same vouchers in different orders take turns instead of
    waiting for each other's voucher rows in a cycle."""
    target = scope.by_business.get(business_id)
    if target is None:
        return []
    return [advisory_key("voucher", target.id, code_key(access_code.strip()))]


def miss_locks(
    scope: Scope, *, caller: str, business_id: int, pool: Pool | None = None
) -> list[int]:
    """The advisory locks a start takes when it turns out a miss (its guessing budgets'): the
    group writer's ``wanted``, taken first when the group runs again for them."""
    target = scope.by_business.get(business_id)
    return [] if target is None else guessing.lock_keys(Guesser(caller, target.id, pool))


def _refusal(voucher: Any, now: datetime) -> SessionReason | None:
    """The miss (``MISSES``) this voucher row alone makes of a start (None: no such code), or
    None when the row lets it go on to its sessions."""
    if voucher is None:
        return SessionReason.UNKNOWN_CREDENTIAL
    if voucher.valid_from is not None and now < voucher.valid_from:
        return SessionReason.NOT_YET_VALID
    if voucher.valid_to is not None and now >= voucher.valid_to:
        return SessionReason.EXPIRED
    if _seconds_left(voucher.minutes_left, voucher.usage_seconds) <= 0:
        return SessionReason.NO_MINUTES_LEFT
    return None


def start_session(
    conn: Connection,
    *,
    scope: Scope,
    actor: Actor,
    business_id: int,
    access_code: str,
    device_id: str,
    idle_seconds: int,
    caller: str,
    budget: GuessBudget,
    pool: Pool | None = None,
) -> SessionDecision:
    """May a device go online with this voucher? Runs in the group writer's write transaction
    (``store/writer.py``). A refused code counts against ``caller``'s budget and the property's,
    or ``pool``'s (``guessing.models.Guesser``).

    The budgets are read without their advisory locks (a count only grows within its window, so
    a used-up budget read so is used up): the logins of one NAS or token with known codes do not
    take turns across workers (only starts of one voucher do: ``start_locks``). A start whose
    voucher row makes it a miss takes the locks then, with ``locks.hold_now`` (never waiting:
    its group may hold voucher rows by now; when another writer holds them, the group runs
    again with every piece's ``miss_locks`` taken first), and reads the budgets again before it
    writes anything, so exactly the miss that uses a budget up is counted as one. A grant is
    decided on the budgets as read (docs/access.md, "Checks in flight")."""
    target = scope.by_business.get(business_id)
    if target is None:
        raise OutOfScope(
            f"Business {business_id} is outside the token's scope.", subject="business"
        )
    now = utc_now()
    idle_since = now - timedelta(seconds=idle_seconds)
    guesser = Guesser(caller, target.id, pool)
    throttled = guessing.throttled_until(conn, guesser=guesser, budget=budget, now=now)
    voucher = (
        None
        if throttled is not None
        else repository.live_voucher(conn, property_id=target.id, code=access_code)
    )
    refusal = None if throttled is not None else _refusal(voucher, now)
    if refusal is not None:  # a miss: counted under its budgets' locks, read again under them
        hold_now(conn, guessing.lock_keys(guesser))
        throttled = guessing.throttled_until(
            conn, guesser=guesser, budget=budget, now=now, fresh=True
        )
        if throttled is not None:
            voucher, refusal = None, None  # as a start refused before its lookup
    session_uid: UUID | None = None
    if throttled is not None:
        reason, seconds_left, minutes_left = SessionReason.THROTTLED, 0, 0
    elif voucher is None:
        reason, seconds_left, minutes_left = SessionReason.UNKNOWN_CREDENTIAL, 0, 0
    else:
        minutes_left = int(voucher.minutes_left or 0)
        seconds_left = _seconds_left(voucher.minutes_left, voucher.usage_seconds)
        online = repository.end_idle_and_open_devices(
            conn, credential_id=voucher.id, idle_since=idle_since, now=now
        )
        if refusal is not None:
            reason = refusal
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
    if reason in MISSES:
        guessing.count_miss(conn, guesser=guesser, budget=budget, actor=actor, now=now)
    events.append(
        conn,
        records.hotspot_session_started(
            property_id=target.id,
            credential_uid=None if voucher is None else voucher.uid,
            outcome=reason.value,
            device_id=device_id,
            session_uid=session_uid,
        ),
        actor=actor,
        now=now,
    )
    return SessionDecision(
        granted=reason is SessionReason.GRANTED,
        reason=reason,
        session_uid=session_uid,
        credential_uid=None if voucher is None else voucher.uid,
        seconds_left=seconds_left if reason is SessionReason.GRANTED else 0,
        minutes_left=minutes_left,
        valid_to=None if voucher is None else voucher.valid_to,
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
    ends by itself when the voucher runs out of minutes. Runs in the caller's write transaction.

    Any non-negative ``elapsed_seconds`` is taken in one report (one event): the HTTP API bounds
    its ``ElapsedSeconds`` to a day, RADIUS accounting passes the growth of ``Acct-Session-Time``
    (up to 2**32-1). No more than the voucher has left reaches SQL, so no database integer
    overflows whatever the caller passes."""
    if elapsed_seconds < 0:
        raise InvalidInput("ElapsedSeconds is not negative.", subject="elapsed")
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
    if found.ended_utc is not None and found.end_reason in _WITHDRAWN:
        # Ended by its voucher's withdrawal: say so, take nothing.
        return Usage(
            session_uid=session_uid,
            seconds_left=0,
            minutes_left=int(found.minutes_left or 0),
            ended=True,
            end_reason=EndReason(found.end_reason),
        )
    idle = found.last_report_utc <= now - timedelta(seconds=idle_seconds)
    if found.ended_utc is not None or idle:
        raise RuleViolation(f"Session {session_uid} has ended; start a new one.", subject="session")
    withdrawn = withdrawal(
        valid_from=found.valid_from,
        valid_to=found.valid_to,
        deleted=found.deleted_utc is not None,
        minutes_left=found.minutes_left,
        usage_seconds=found.usage_seconds,
        now=now,
    )
    if withdrawn is not None:
        # Withdrawn without a rewrite (its validity ran out, another device used the last
        # minute): the voucher's sessions end now, and nothing more is taken.
        end_sessions(
            conn,
            credential_id=found.credential_id,
            credential_uid=found.credential_uid,
            property_id=found.property_id,
            reason=withdrawn,
            actor=actor,
            now=now,
        )
        return Usage(
            session_uid=session_uid,
            seconds_left=0,
            minutes_left=int(found.minutes_left or 0),
            ended=True,
            end_reason=withdrawn,
        )
    # Taking more than is left takes exactly what is left (consume floors at 0 minutes and 0
    # seconds): the same balance, with a bound on the integer the statement adds.
    taken = min(elapsed_seconds, _seconds_left(found.minutes_left, found.usage_seconds))
    minutes_left, usage_seconds = repository.consume(
        conn, credential_id=found.credential_id, seconds=taken, now=now
    )
    seconds_left = _seconds_left(minutes_left, usage_seconds)
    reason = EndReason.NO_MINUTES_LEFT if seconds_left <= 0 else EndReason.ENDED if end else None
    ended = reason is not None
    repository.touch(
        conn,
        session_id=found.id,
        now=now,
        end=ended,
        reason=None if reason is None else reason.value,
    )
    events.append(
        conn,
        records.hotspot_usage(
            property_id=found.property_id,
            credential_uid=found.credential_uid,
            session_uid=session_uid,
            seconds=elapsed_seconds,
            minutes_left=minutes_left,
            end_reason=None if reason is None else reason.value,
        ),
        actor=actor,
        now=now,
    )
    if reason is EndReason.NO_MINUTES_LEFT:
        # The voucher's other devices go offline with it.
        end_sessions(
            conn,
            credential_id=found.credential_id,
            credential_uid=found.credential_uid,
            property_id=found.property_id,
            reason=reason,
            actor=actor,
            now=now,
        )
    return Usage(
        session_uid=session_uid,
        seconds_left=seconds_left,
        minutes_left=minutes_left,
        ended=ended,
        end_reason=reason,
    )


#: End reasons a report answers with (200, ``Ended``) rather than refusing (409).
_WITHDRAWN: frozenset[str] = frozenset(
    {
        EndReason.DELETED.value,
        EndReason.EXPIRED.value,
        EndReason.NO_MINUTES_LEFT.value,
        EndReason.NOT_YET_VALID.value,
    }
)
