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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.credentials.models import Credential
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor, NewEvent
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget, Guesser, Pool
from keyledger.domain.hotspot import repository
from keyledger.domain.hotspot.models import MISSES, EndReason, SessionDecision, SessionReason, Usage
from keyledger.domain.properties.models import Property, Scope
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


@dataclass(frozen=True, slots=True)
class SessionStart:
    """One device asking to go online with a voucher (``start_sessions``). A refused code counts
    against ``caller``'s budget and the property's, or ``pool``'s (``guessing.models.Guesser``)."""

    scope: Scope
    actor: Actor
    business_id: int
    access_code: str
    device_id: str
    idle_seconds: int
    caller: str
    budget: GuessBudget
    pool: Pool | None = None


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
    """May a device go online with this voucher? ``start_sessions`` for one start."""
    start = SessionStart(
        scope, actor, business_id, access_code, device_id, idle_seconds, caller, budget, pool
    )
    decided = start_sessions(conn, [start])[0]
    if isinstance(decided, Exception):
        raise decided
    return decided


@dataclass(slots=True)
class _Open:
    """An open session of a voucher as the starts of one group see it."""

    id: int | None  # None: inserted by this group (written at its end)
    uid: UUID
    device_id: str
    last_report_utc: datetime


class _Group:
    """The starts of one ``start_sessions`` call: their shared reads, kept current as each is
    decided, and the writes of their grants, made together (``flush``) in one driver call each."""

    def __init__(self, conn: Connection, now: datetime, sessions: dict[int, list[_Open]]) -> None:
        self.conn = conn
        self.now = now
        self.sessions = sessions  # the open sessions of the group's vouchers, by voucher id
        self.inserted: list[tuple[UUID, int, str]] = []
        self.touched: dict[int, None] = {}
        self.accessed: dict[int, None] = {}
        self.events: list[tuple[NewEvent, Actor]] = []

    def flush(self) -> None:
        conn, now = self.conn, self.now
        repository.insert_sessions(conn, self.inserted, now=now)
        repository.touch_many(conn, list(self.touched), now=now)
        repository.mark_access_many(conn, list(self.accessed), now=now)
        events.append_each(conn, self.events, now=now)
        self.inserted, self.touched, self.accessed, self.events = [], {}, {}, []

    def decide(
        self, start: SessionStart, target: Property, guesser: Guesser, voucher: Any
    ) -> SessionDecision:
        """One start, on the group's reads (``voucher``: its live voucher as read, or None)."""
        conn, now, budget = self.conn, self.now, start.budget
        throttled = guessing.throttled_until(conn, guesser=guesser, budget=budget, now=now)
        if throttled is not None:
            voucher = None
        refusal = None if throttled is not None else _refusal(voucher, now)
        if refusal is not None:  # a miss: counted under its budgets' locks, read again under them
            self.flush()  # the grants before it first
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
            online = self.online(voucher.id, start.idle_seconds)
            if refusal is not None:
                reason = refusal
            elif start.device_id in online:
                mine = online[start.device_id]
                reason, session_uid = SessionReason.GRANTED, mine.uid
                if mine.id is not None:
                    self.touched[mine.id] = None
                mine.last_report_utc = now
            elif len(online) >= (voucher.user_limit or 1):
                reason = SessionReason.TOO_MANY_DEVICES
            else:
                reason, session_uid = SessionReason.GRANTED, uuid.uuid4()
                self.inserted.append((session_uid, voucher.id, start.device_id))
                self.sessions[voucher.id].append(_Open(None, session_uid, start.device_id, now))
            if reason is SessionReason.GRANTED:
                self.accessed[voucher.id] = None
        if reason in MISSES:
            guessing.count_miss(conn, guesser=guesser, budget=budget, actor=start.actor, now=now)
        event = records.hotspot_session_started(
            property_id=target.id,
            credential_uid=None if voucher is None else voucher.uid,
            outcome=reason.value,
            device_id=start.device_id,
            session_uid=session_uid,
        )
        self.events.append((event, start.actor))
        return SessionDecision(
            granted=reason is SessionReason.GRANTED,
            reason=reason,
            session_uid=session_uid,
            credential_uid=None if voucher is None else voucher.uid,
            seconds_left=seconds_left if reason is SessionReason.GRANTED else 0,
            minutes_left=minutes_left,
            valid_to=None if voucher is None else voucher.valid_to,
        )

    def online(self, voucher_id: int, idle_seconds: int) -> dict[str, _Open]:
        """The voucher's devices online, by device, after ending its idle sessions (reported
        last at or before ``idle_seconds`` ago, in whole seconds as stored), which is rare: the
        group's writes so far are made first, then the idle ones end in one statement."""
        idle_since = self.now - timedelta(seconds=idle_seconds)
        cut = idle_since.replace(microsecond=0)  # what the store compares (whole seconds)
        rows = self.sessions[voucher_id]
        if any(row.last_report_utc <= cut for row in rows):
            self.flush()
            repository.end_idle(
                self.conn, credential_id=voucher_id, idle_since=idle_since, now=self.now
            )
            rows = self.sessions[voucher_id] = [r for r in rows if r.last_report_utc > cut]
        return {row.device_id: row for row in rows}


def start_sessions(
    conn: Connection, starts: Sequence[SessionStart]
) -> list[SessionDecision | OutOfScope]:
    """May each device go online with its voucher? Decided one after the other, as if each ran
    alone in turn, in one write transaction (the group writer's, ``store/writer.py``: a batch),
    with the reads and writes of all of them shared: their budgets, vouchers and open sessions
    are read in one statement each, their grants written together at the end. A start whose
    business is outside its scope gets ``OutOfScope`` in its place (nothing written for it).

    The budgets are read without their advisory locks (a count only grows within its window, so
    a used-up budget read so is used up): the logins of one NAS or token with known codes do not
    take turns across workers (only starts of one voucher do: ``start_locks``). A start whose
    voucher row makes it a miss takes the locks then, with ``locks.hold_now`` (never waiting:
    its group may hold voucher rows by now; when another writer holds them, the group runs
    again with every piece's ``miss_locks`` taken first), and reads the budgets again before it
    writes anything, so exactly the miss that uses a budget up is counted as one; the writes of
    the grants before it are made first, so the event log keeps the starts' order. A grant is
    decided on the budgets as read (docs/access.md, "Checks in flight")."""
    now = utc_now()
    targets = [s.scope.by_business.get(s.business_id) for s in starts]
    guessers = [
        None if t is None else Guesser(s.caller, t.id, s.pool)
        for s, t in zip(starts, targets, strict=True)
    ]
    by_budget: dict[GuessBudget, list[Guesser]] = {}
    for s, g in zip(starts, guessers, strict=True):
        if g is not None:
            by_budget.setdefault(s.budget, []).append(g)
    for budget, askers in by_budget.items():
        guessing.read_budgets(conn, askers, budget=budget, now=now)
    # The vouchers of the starts not throttled now (a budget used up stays so in its window).
    codes: dict[int, list[str]] = {}
    for s, t, g in zip(starts, targets, guessers, strict=True):
        if (
            t is not None
            and g is not None
            and guessing.throttled_until(conn, guesser=g, budget=s.budget, now=now) is None
        ):
            codes.setdefault(t.id, []).append(s.access_code)
    found = {
        (property_id, key): row
        for property_id, wanted in codes.items()
        for key, row in repository.live_vouchers(
            conn, property_id=property_id, codes=wanted
        ).items()
    }
    opened = repository.open_sessions_of(
        conn, credential_ids=list(dict.fromkeys(row.id for row in found.values()))
    )
    group = _Group(
        conn,
        now,
        {
            voucher_id: [_Open(r.id, r.uid, r.device_id, r.last_report_utc) for r in rows]
            for voucher_id, rows in opened.items()
        },
    )
    decided: list[SessionDecision | OutOfScope] = []
    for start, target, guesser in zip(starts, targets, guessers, strict=True):
        if target is None or guesser is None:
            decided.append(
                OutOfScope(
                    f"Business {start.business_id} is outside the token's scope.",
                    subject="business",
                )
            )
            continue
        voucher = found.get((target.id, code_key(start.access_code.strip())))
        decided.append(group.decide(start, target, guesser, voucher))
    group.flush()
    return decided


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
            taken=taken,
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
