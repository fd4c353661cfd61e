"""NAS records, and hotspot sessions driven by a NAS (docs/radius.md).

A NAS (a hotspot asking over RADIUS) belongs to one business; its decisions go through the
hotspot core (``hotspot/service.py``) exactly like ``/api/v1/hotspot/sessions``: one set of
rules, one event log, the same guessing budgets (the NAS is the caller, ``nas:<id>``).

Accounting: the seconds consumed by a report are the growth of its ``Acct-Session-Time`` over
the highest one counted for that ``Acct-Session-Id`` (``radius_sessions.session_time``), so a
retransmitted or reordered report never consumes twice.

Disconnect: the signal is the hotspot core's own. A withdrawal ends a voucher's sessions in its
transaction, recording why (``hotspot_sessions.end_reason``); an open accounting session (no
Stop yet) on such a session is a Disconnect-Request to send. So the "outbox" is written by the
withdrawal itself, atomically, with no change to the hotspot core; ``claim_disconnects`` takes
due ones for one worker (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's single writer), and
``settle_disconnect`` records the NAS's answer or its silence as a ``hotspot.disconnect`` event.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor, ActorKind
from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.hotspot import repository as hotspot_repository
from keyledger.domain.hotspot import service as hotspot
from keyledger.domain.hotspot.models import EndReason, SessionDecision
from keyledger.domain.nas import repository
from keyledger.domain.nas.models import (
    DEFAULT_COA_PORT,
    AccountingResult,
    DisconnectOutcome,
    Nas,
    PendingDisconnect,
    parse_network,
)
from keyledger.domain.properties import repository as properties
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import InvalidInput, RuleViolation, SessionNotFound
from keyledger.kit.sealing import ValueSealer
from keyledger.store import Store

#: Longest accepted shared secret (RFC 2865 asks for at least 16 octets; many NAS take 64 at most).
MAX_SECRET = 128

#: End reasons of a withdrawal: a session ended so is disconnected at its NAS.
WITHDRAWN: frozenset[str] = frozenset(
    {
        EndReason.DELETED.value,
        EndReason.EXPIRED.value,
        EndReason.NO_MINUTES_LEFT.value,
        EndReason.NOT_YET_VALID.value,
    }
)

#: ``report_usage`` takes at most a day per report: longer growth is taken in such steps.
_MAX_REPORT = 86_400


# --- records -------------------------------------------------------------------------------------


def add_nas(
    store: Store,
    *,
    business_id: int,
    address: str,
    secret: str,
    name: str | None = None,
    coa_port: int = DEFAULT_COA_PORT,
    allow_missing_message_authenticator: bool = False,
) -> Nas:
    """Let the hotspot(s) at ``address`` (an IP address or a CIDR network) ask for
    ``business_id``'s vouchers, signing with ``secret`` (stored sealed like door values)."""
    with store.write() as conn:
        return import_nas(
            conn,
            store.sealer,
            business_id=business_id,
            address=address,
            secret=secret,
            name=name,
            coa_port=coa_port,
            allow_missing_message_authenticator=allow_missing_message_authenticator,
        )


def import_nas(
    conn: Connection,
    sealer: ValueSealer,
    *,
    business_id: int,
    address: str,
    secret: str,
    name: str | None = None,
    coa_port: int = DEFAULT_COA_PORT,
    allow_missing_message_authenticator: bool = False,
) -> Nas:
    """``add_nas`` in the caller's write transaction (the demo's import, docs/radius.md). Adding
    a NAS records no event either way."""
    try:
        network = parse_network(address)
    except ValueError:
        raise InvalidInput(
            f"{address!r} is not an IP address or network.", subject="address"
        ) from None
    if not 1 <= len(secret.encode("utf-8")) <= MAX_SECRET:
        raise InvalidInput(f"A shared secret has 1 to {MAX_SECRET} octets.", subject="secret")
    if name is not None and not 1 <= len(name.strip()) <= 200:
        raise InvalidInput("A NAS name has 1 to 200 characters.", subject="name")
    if not 1 <= coa_port <= 65535:
        raise InvalidInput("A CoA port is between 1 and 65535.", subject="coa_port")
    uid = uuid.uuid4()
    sealed = sealer.columns(uid, secret)
    found = properties.by_business_id(conn, business_id)
    if found is None:
        raise InvalidInput(f"No business {business_id}.", subject="business")
    nas_id = repository.insert_nas(
        conn,
        uid=uid,
        property_id=found.id,
        name=None if name is None else name.strip(),
        address=str(network),
        secret=sealed["value"],
        secret_sealed=sealed["value_sealed"],
        coa_port=coa_port,
        require_message_authenticator=not allow_missing_message_authenticator,
        created_utc=utc_now(),
    )
    return Nas(
        id=nas_id,
        uid=uid,
        property_id=found.id,
        business_id=business_id,
        name=None if name is None else name.strip(),
        network=network,
        secret=secret.encode("utf-8"),
        coa_port=coa_port,
        require_message_authenticator=not allow_missing_message_authenticator,
    )


def _to_nas(row: Any, sealer: ValueSealer) -> Nas:
    secret = row.secret if row.secret_sealed is None else sealer.open(row.uid, row.secret_sealed)
    return Nas(
        id=int(row.id),
        uid=row.uid,
        property_id=int(row.property_id),
        business_id=int(row.business_id),
        name=row.name,
        network=parse_network(row.address),
        secret=secret.encode("utf-8"),
        coa_port=int(row.coa_port),
        require_message_authenticator=bool(row.require_message_authenticator),
    )


def list_nas(store: Store) -> list[Nas]:
    """Every NAS, with its secret opened (to sign packets)."""
    with store.read() as conn:
        rows = repository.all_nas(conn)
    return [_to_nas(row, store.sealer) for row in rows]


def remove_nas(store: Store, *, nas_id: int) -> None:
    with store.write() as conn:
        if not repository.delete_nas(conn, nas_id):
            raise InvalidInput(f"No NAS {nas_id}.", subject="nas")


# Per request, from the NAS record alone: built once per NAS (a NAS changed is another key).
@lru_cache(maxsize=1024)
def actor(nas: Nas) -> Actor:
    """Who a NAS's decisions are recorded as."""
    return Actor(kind=ActorKind.NAS, id=nas.id, label=nas.name or f"NAS {nas.id}")


@lru_cache(maxsize=1024)
def scope(nas: Nas) -> Scope:
    return Scope((Property(nas.property_id, uuid.UUID(int=0), nas.business_id, "", "UTC"),))


def guesser(nas: Nas) -> str:
    """The guessing budget's caller: the NAS (its own budget, like an access token's)."""
    return f"nas:{nas.id}"


# --- authentication ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorization:
    decision: SessionDecision
    valid_to: datetime | None
    now: datetime


def authorize_locks(nas: Nas) -> list[int]:
    return hotspot.start_locks(scope(nas), caller=guesser(nas), business_id=nas.business_id)


def authorize(
    conn: Connection,
    *,
    nas: Nas,
    code: str,
    device_id: str,
    idle_seconds: int,
    budget: GuessBudget,
) -> Authorization:
    """``hotspot.start_session`` for a NAS, and the voucher's ``ValidTo`` when granted. A code
    its password did not prove is passed as ``""`` (no voucher has it: UnknownCredential,
    counted as a miss). Runs in the caller's write transaction (with ``authorize_locks``)."""
    decision = hotspot.start_session(
        conn,
        scope=scope(nas),
        actor=actor(nas),
        business_id=nas.business_id,
        access_code=code,
        device_id=device_id,
        idle_seconds=idle_seconds,
        caller=guesser(nas),
        budget=budget,
    )
    valid_to = decision.valid_to if decision.granted else None
    return Authorization(decision=decision, valid_to=valid_to, now=utc_now())


# --- accounting ----------------------------------------------------------------------------------


def account(
    conn: Connection,
    *,
    nas: Nas,
    nas_address: str,
    status: str,
    acct_session_id: str,
    session_time: int,
    class_uid: UUID | None,
    user_name: str,
    device_id: str,
    idle_seconds: int,
) -> AccountingResult:
    """One Accounting-Request (``status``: Start, Interim-Update, Stop) of ``nas``: take the
    growth of ``session_time`` off the session's voucher; Stop ends the session. Reports on an
    unknown, ended or idle session consume nothing. Runs in the caller's write transaction."""
    now = utc_now()
    stop = status == "Stop"
    row = repository.accounting_session(conn, nas_id=nas.id, acct_session_id=acct_session_id)
    if row is None:
        session_uid = class_uid or _session_of_device(
            conn, nas=nas, code=user_name, device_id=device_id, idle_seconds=idle_seconds, now=now
        )
        if session_uid is None or repository.session_property(conn, session_uid=session_uid) != (
            nas.property_id
        ):
            return AccountingResult(seconds=0, session_uid=None, ended=False)
        row_id = repository.insert_accounting_session(
            conn,
            nas_id=nas.id,
            acct_session_id=acct_session_id,
            session_uid=session_uid,
            user_name=user_name[:253],
            calling_station_id=device_id[:253],
            nas_address=nas_address,
            session_time=0,
            stopped=False,
            disconnect_attempts=0,
            updated_utc=now,
        )
        counted, first = 0, True
    else:
        if row.stopped:
            return AccountingResult(seconds=0, session_uid=row.session_uid, ended=True)
        row_id, session_uid, first = int(row.id), row.session_uid, False
        counted = int(row.session_time)
    growth = max(0, session_time - counted)
    ended = False
    if first or growth > 0 or stop:
        ended = _report(
            conn, nas=nas, session_uid=session_uid, seconds=growth, end=stop, idle=idle_seconds
        )
    repository.update_accounting_session(
        conn, row_id=row_id, session_time=max(counted, session_time), stopped=stop, now=now
    )
    return AccountingResult(seconds=growth, session_uid=session_uid, ended=ended or stop)


def _report(
    conn: Connection, *, nas: Nas, session_uid: UUID, seconds: int, end: bool, idle: int
) -> bool:
    """``report_usage`` in steps of at most a day; whether the session has ended."""
    remaining = seconds
    while True:
        step = min(remaining, _MAX_REPORT)
        remaining -= step
        try:
            usage = hotspot.report_usage(
                conn,
                scope=scope(nas),
                actor=actor(nas),
                session_uid=session_uid,
                elapsed_seconds=step,
                end=end and remaining == 0,
                idle_seconds=idle,
            )
        except (SessionNotFound, RuleViolation):
            return True  # ended (by its client or idling) or gone: nothing to take
        if usage.ended or remaining <= 0:
            return usage.ended


def _session_of_device(
    conn: Connection, *, nas: Nas, code: str, device_id: str, idle_seconds: int, now: datetime
) -> UUID | None:
    """The open session of this device on this voucher, for a NAS that does not echo Class."""
    voucher = hotspot_repository.live_voucher(conn, property_id=nas.property_id, code=code)
    if voucher is None:
        return None
    online = hotspot_repository.open_devices(
        conn, credential_id=voucher.id, idle_since=now - timedelta(seconds=idle_seconds)
    )
    found = online.get(device_id)
    return None if found is None else found.uid


# --- disconnect ----------------------------------------------------------------------------------


def has_pending_disconnects(store: Store) -> bool:
    """A read (no write lock) before a claim: most polls find nothing."""
    with store.read() as conn:
        return bool(
            repository.pending_disconnects(
                conn, withdrawn=WITHDRAWN, now=utc_now(), limit=1, claim=False
            )
        )


def claim_disconnects(
    conn: Connection, *, retry_seconds: float, max_attempts: int, limit: int = 50
) -> list[PendingDisconnect]:
    """Due Disconnect-Requests for this worker to send now: each attempt is counted and the
    session left alone by every worker for ``retry_seconds`` (the wait for an answer), rounded up
    to whole seconds as the store keeps them. A session whose ``max_attempts`` went unanswered
    (its sender gone before recording it) is settled here as ``NoAnswer``, not sent again."""
    now = utc_now()
    rows = repository.pending_disconnects(
        conn,
        withdrawn=WITHDRAWN,
        now=now,
        limit=limit,
        claim=conn.dialect.name == "postgresql",
    )
    due = [row for row in rows if int(row.disconnect_attempts) < max_attempts]
    if due:
        repository.claim_disconnects(
            conn,
            row_ids=[int(row.id) for row in due],
            after=now + timedelta(seconds=math.ceil(retry_seconds) + 1),
        )
    claimed = []
    for row in rows:
        exhausted = int(row.disconnect_attempts) >= max_attempts
        pending = PendingDisconnect(
            id=int(row.id),
            nas_id=int(row.nas_id),
            nas_address=row.nas_address,
            session_uid=row.session_uid,
            acct_session_id=row.acct_session_id,
            user_name=row.user_name,
            calling_station_id=row.calling_station_id,
            attempts=int(row.disconnect_attempts) + (0 if exhausted else 1),
            property_id=int(row.property_id),
            credential_uid=row.credential_uid,
            end_reason=row.end_reason,
        )
        if exhausted:
            settle_disconnect(conn, pending=pending, nas=None, outcome=DisconnectOutcome.NO_ANSWER)
        else:
            claimed.append(pending)
    return claimed


def settle_disconnect(
    conn: Connection,
    *,
    pending: PendingDisconnect,
    nas: Nas | None,
    outcome: DisconnectOutcome,
    error_cause: int | None = None,
) -> None:
    """Record how the NAS answered (or that it did not, after the last attempt), once."""
    now = utc_now()
    if not repository.settle_disconnect(conn, row_id=pending.id, outcome=outcome.value, now=now):
        return
    events.append(
        conn,
        records.hotspot_disconnect(
            property_id=pending.property_id,
            credential_uid=pending.credential_uid,
            outcome=outcome.value,
            session_uid=pending.session_uid,
            acct_session_id=pending.acct_session_id,
            device_id=pending.calling_station_id,
            nas_id=pending.nas_id,
            reason=pending.end_reason,
            attempts=pending.attempts,
            error_cause=error_cause,
        ),
        actor=Actor.system() if nas is None else actor(nas),
        now=now,
    )
