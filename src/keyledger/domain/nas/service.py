"""NAS records, and hotspot sessions driven by a NAS (docs/radius.md).

A NAS (a hotspot asking over RADIUS) belongs to one business; its decisions go through the
hotspot core (``hotspot/service.py``) exactly like ``/api/v1/hotspot/sessions``: one set of
rules, one event log. Its refused codes count per device (``Calling-Station-Id``) and per NAS
(``guesser``), not against the property's door budget.

Accounting: the seconds consumed by a report are the growth of its ``Acct-Session-Time`` over
the highest one counted for that ``Acct-Session-Id`` (``radius_sessions.session_time``), so a
retransmitted or reordered report never consumes twice; it is taken in one ``report_usage``
call whatever its size. A row is one connection (NAS record, device address, Acct-Session-Id):
every connection is charged its own growth, a Stop ends the hotspot session only when no other
connection on it is live, a reused Acct-Session-Id starts its row over on the new session, and
Accounting-On/-Off stop the accounting sessions the sending device had before it restarted
(docs/radius.md, "Accounting review").

Disconnect: the signal is the hotspot core's own. A withdrawal ends a voucher's sessions in its
transaction, recording why (``hotspot_sessions.end_reason``); an open accounting session (no
Stop yet) on such a session is a Disconnect-Request to send. So the "outbox" is written by the
withdrawal itself, atomically, with no change to the hotspot core; ``claim_disconnects`` takes
due ones for one worker (PostgreSQL ``FOR UPDATE SKIP LOCKED``; SQLite's single writer), and
``settle_disconnect`` records the NAS's answer or its silence as a ``hotspot.disconnect`` event.
"""

from __future__ import annotations

import hashlib
import ipaddress
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
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget, Pool
from keyledger.domain.hotspot import repository as hotspot_repository
from keyledger.domain.hotspot import service as hotspot
from keyledger.domain.hotspot.models import EndReason, SessionDecision
from keyledger.domain.nas import repository
from keyledger.domain.nas.models import (
    DEFAULT_COA_PORT,
    AccountingResult,
    DisconnectOutcome,
    Nas,
    NetworkOverlap,
    PendingDisconnect,
    is_wide,
    overlap,
    parse_network,
)
from keyledger.domain.properties import repository as properties
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import InvalidInput, OutOfScope, RuleViolation, SessionNotFound
from keyledger.kit.sealing import ValueSealer
from keyledger.store import Store
from keyledger.store.locks import advisory_key, serialise_on

#: Longest accepted shared secret (many NAS take 64 octets at most).
MAX_SECRET = 128
#: Shortest accepted shared secret: shorter ones fall to an offline guess from one packet.
MIN_SECRET = 8
#: RFC 2865 section 3 asks for at least 16 octets: shorter ones are accepted with a warning.
ADVISED_SECRET = 16

#: Adding a NAS takes this lock (PostgreSQL; SQLite's writer is single) so two additions cannot
#: both miss each other's network in the overlap check.
_NAS_NETWORKS = advisory_key("nas", "networks")

#: End reasons of a withdrawal: a session ended so is disconnected at its NAS.
WITHDRAWN: frozenset[str] = frozenset(
    {
        EndReason.DELETED.value,
        EndReason.EXPIRED.value,
        EndReason.NO_MINUTES_LEFT.value,
        EndReason.NOT_YET_VALID.value,
    }
)


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
    allow_wide_network: bool = False,
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
            allow_wide_network=allow_wide_network,
        )


def secret_warnings(secret: str) -> list[str]:
    """What an accepted shared secret falls short of (RFC 2865's advice), for the operator."""
    octets = len(secret.encode("utf-8"))
    if octets < ADVISED_SECRET:
        return [
            f"The shared secret has {octets} octets; RFC 2865 advises at least "
            f"{ADVISED_SECRET} (a short one can be guessed offline from one captured packet)."
        ]
    return []


#: IPv6 addresses that stand for IPv4 ones (RFC 4291 section 2.5.5.2).
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


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
    allow_wide_network: bool = False,
) -> Nas:
    """``add_nas`` in the caller's write transaction (the demo's import, docs/radius.md). Adding
    a NAS records no event either way.

    Refused: a network of every address (``0.0.0.0/0``, ``::/0``); one broader than a /8 of IPv4
    or a /32 of IPv6 unless ``allow_wide_network``; a secret shorter than ``MIN_SECRET`` octets;
    a network overlapping a NAS of another business (a source address would find one of the two:
    one business could take another's hotspot traffic). Overlaps within a business are allowed
    (the most specific network wins)."""
    try:
        network = parse_network(address)
    except ValueError:
        raise InvalidInput(
            f"{address!r} is not an IP address or network.", subject="address"
        ) from None
    if network.prefixlen == 0:
        raise InvalidInput(
            f"{network} is every address: give the NAS's address or network.", subject="address"
        )
    if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
        # An IPv4 packet is matched by its IPv4 address (``::ffff:a.b.c.d`` from a dual-stack
        # socket is read as ``a.b.c.d``): such a NAS would never match, and would slip past the
        # overlap check against other businesses' IPv4 networks.
        mapped = ipaddress.IPv4Network(
            (int(network.network_address) & 0xFFFFFFFF, max(0, network.prefixlen - 96))
        )
        raise InvalidInput(
            f"{network} is IPv4-mapped: give the IPv4 address or network ({mapped}).",
            subject="address",
        )
    if is_wide(network) and not allow_wide_network:
        raise InvalidInput(
            f"{network} is broader than a /8 (IPv4) or a /32 (IPv6); a network this wide "
            "needs --allow-wide-network.",
            subject="address",
        )
    if not MIN_SECRET <= len(secret.encode("utf-8")) <= MAX_SECRET:
        raise InvalidInput(
            f"A shared secret has {MIN_SECRET} to {MAX_SECRET} octets.", subject="secret"
        )
    if name is not None and not 1 <= len(name.strip()) <= 200:
        raise InvalidInput("A NAS name has 1 to 200 characters.", subject="name")
    if not 1 <= coa_port <= 65535:
        raise InvalidInput("A CoA port is between 1 and 65535.", subject="coa_port")
    uid = uuid.uuid4()
    sealed = sealer.columns(uid, secret)
    found = properties.by_business_id(conn, business_id)
    if found is None:
        raise InvalidInput(f"No business {business_id}.", subject="business")
    serialise_on(conn, [_NAS_NETWORKS])  # the check and the insert, one addition at a time
    for other in repository.nas_networks(conn):
        if int(other.business_id) != business_id and overlap(network, parse_network(other.address)):
            raise NetworkOverlap(
                network,
                other_id=int(other.id),
                other_network=str(other.address),
                other_business_id=int(other.business_id),
            )
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


def guesser(nas: Nas, device_id: str) -> str:
    """The guessing budget's caller: one device at one NAS (``per_caller``), so one guest's
    typos or a guessing device throttle that device only. The device id is the NAS's word
    (a MAC address a guesser can change): the NAS's pool (``pool``) bounds them all."""
    digest = hashlib.sha256(device_id.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"nas:{nas.id}:device:{digest}"


def pool(nas: Nas) -> Pool:
    """The budget every device at ``nas`` shares (``per_property``): past it the whole NAS
    answers Throttled. Kept apart from the property's budget, which door checks use, so guesses
    on Wi-Fi never throttle the doors (docs/radius.md, "Guessing")."""
    return Pool(subject=f"nas:{nas.id}", label="Nas", caller_label="Device")


def forget_past_guesses(store: Store, *, budget: GuessBudget) -> int:
    """Drop the guessing counts of past windows (``guessing.forget_past_windows``): every device
    that ever missed at a NAS has a count row, which nothing else would delete."""
    with store.write() as conn:
        return guessing.forget_past_windows(conn, budget=budget, now=utc_now())


# --- authentication ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Authorization:
    decision: SessionDecision
    valid_to: datetime | None
    now: datetime


def authorize_locks(nas: Nas, code: str, device_id: str) -> tuple[list[int], list[int]]:
    """The locks ``authorize`` declares to the group writer, and those it may want (a miss)."""
    target = scope(nas)
    return (
        hotspot.start_locks(target, business_id=nas.business_id, access_code=code),
        hotspot.miss_locks(
            target, caller=guesser(nas, device_id), business_id=nas.business_id, pool=pool(nas)
        ),
    )


@dataclass(frozen=True, slots=True)
class Login:
    """One Access-Request's question (``authorize``): may ``device_id`` at ``nas`` go online
    with the voucher ``code``?"""

    nas: Nas
    code: str
    device_id: str
    idle_seconds: int
    budget: GuessBudget


def authorize(conn: Connection, logins: list[Login]) -> list[Authorization | OutOfScope]:
    """``hotspot.start_sessions`` for Access-Requests (a group writer's batch), and each
    voucher's ``ValidTo`` when granted. A code its password did not prove is passed as ``""``
    (no voucher has it: UnknownCredential, counted as a miss). Runs in the group writer's write
    transaction."""
    decided = hotspot.start_sessions(
        conn,
        [
            hotspot.SessionStart(
                scope=scope(login.nas),
                actor=actor(login.nas),
                business_id=login.nas.business_id,
                access_code=login.code,
                device_id=login.device_id,
                idle_seconds=login.idle_seconds,
                caller=guesser(login.nas, login.device_id),
                budget=login.budget,
                pool=pool(login.nas),
            )
            for login in logins
        ],
    )
    now = utc_now()
    return [
        decision  # refused before anything was written for it (a NAS's business is in scope)
        if isinstance(decision, Exception)
        else Authorization(
            decision=decision, valid_to=decision.valid_to if decision.granted else None, now=now
        )
        for decision in decided
    ]


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
    """One Accounting-Request (``status``: Start, Interim-Update, Stop) of ``nas``'s device at
    ``nas_address``: take the growth of ``session_time`` off the session's voucher in one report.
    Every connection (Acct-Session-Id of one device) is charged its own growth; a Stop ends the
    hotspot session only when no other connection on it is live. An Acct-Session-Id reported
    with another session than the one that last took it up (its ``Class``; without one, the
    device's open session when the row is stopped) or another ``Calling-Station-Id`` was reused
    for a new connection: the new session, if open, is counted in a row of its own from 0, and
    an earlier session's reports under the id go on from its own count. Reports on an unknown,
    ended or idle session, or naming another device's session in ``Class``, consume nothing.
    Runs in the caller's write transaction; on PostgreSQL locks the voucher before the row."""
    now = utc_now()
    key: dict[str, Any] = {
        "nas_id": nas.id,
        "nas_address": nas_address,
        "acct_session_id": acct_session_id,
    }
    row = repository.accounting_session(conn, **key)  # the session that last took up the id
    reused = row is not None and (
        (class_uid is not None and class_uid != row.session_uid)
        or bool(device_id and row.calling_station_id and device_id != row.calling_station_id)
    )
    if row is not None and not reused and class_uid is None and row.stopped:
        # A NAS that does not echo Class: its counter may have come round to a stopped id.
        found = _session_of_device(
            conn, nas=nas, code=user_name, device_id=device_id, idle_seconds=idle_seconds, now=now
        )
        reused = found is not None and found != row.session_uid
    if row is None or reused:
        session_uid = class_uid or _session_of_device(
            conn, nas=nas, code=user_name, device_id=device_id, idle_seconds=idle_seconds, now=now
        )
        if session_uid is None:
            return _NOTHING
        owner = repository.session_owner(conn, session_uid=session_uid)
        if owner is None or int(owner.property_id) != nas.property_id:
            return _NOTHING
        if class_uid is not None and device_id and device_id != owner.device_id:
            return _NOTHING  # another device's session: its Class proves nothing here
        if reused and owner.ended_utc is not None:
            # A late report of an earlier connection under this id (or of an ended session):
            # it takes nothing; its Stop still stops that session's row under the id.
            if status == "Stop":
                repository.stop_accounting_session(conn, **key, session_uid=session_uid, now=now)
            return AccountingResult(seconds=0, session_uid=session_uid, ended=True)
        voucher_id: int | None = int(owner.credential_id)
    else:
        session_uid = row.session_uid
        voucher_id = None if row.credential_id is None else int(row.credential_id)
    if conn.dialect.name == "postgresql":
        # The voucher first, then the row of this session under the id (docs/architecture.md,
        # "Lock order"): two reports of one new connection insert one row, and a Stop sees the
        # other connections of its session as they are. SQLite's write lock serialises these
        # transactions already.
        if voucher_id is not None:
            hotspot_repository.lock_voucher(conn, credential_id=voucher_id)
        row = repository.accounting_session(conn, **key, session_uid=session_uid, lock=True)
    elif reused:
        # An id reused by another session, or taken up again by an earlier one whose reports
        # still come (a queued Stop, two connections sharing the id): each session under the id
        # keeps its own count, so neither is charged its whole time again.
        row = repository.accounting_session(conn, **key, session_uid=session_uid)
    if row is None:
        row_id = repository.insert_accounting_session(
            conn,
            **key,
            session_uid=session_uid,
            user_name=user_name[:253],
            calling_station_id=device_id[:253],
            session_time=0,
            stopped=False,
            disconnect_attempts=0,
            updated_utc=now,
        )
        counted, first = 0, True
    elif row.stopped:
        return AccountingResult(seconds=0, session_uid=session_uid, ended=True)
    else:
        row_id, counted, first = int(row.id), int(row.session_time), False
    return _count(
        conn,
        nas=nas,
        row_id=row_id,
        session_uid=session_uid,
        counted=counted,
        first=first,
        status=status,
        session_time=session_time,
        idle_seconds=idle_seconds,
        now=now,
    )


def _count(
    conn: Connection,
    *,
    nas: Nas,
    row_id: int,
    session_uid: UUID,
    counted: int,
    first: bool,
    status: str,
    session_time: int,
    idle_seconds: int,
    now: datetime,
) -> AccountingResult:
    """Consume the growth of ``session_time`` over ``counted`` (one report), raise the count.
    A Stop ends the hotspot session unless another connection on it is still live."""
    stop = status == "Stop"
    growth = max(0, session_time - counted)
    end = stop and not repository.other_live_connection(
        conn, session_uid=session_uid, row_id=row_id, since=now - timedelta(seconds=idle_seconds)
    )
    ended = False
    if first or growth > 0 or end:
        ended = _report(
            conn, nas=nas, session_uid=session_uid, seconds=growth, end=end, idle=idle_seconds
        )
    repository.update_accounting_session(
        conn, row_id=row_id, session_time=max(counted, session_time), stopped=stop, now=now
    )
    return AccountingResult(seconds=growth, session_uid=session_uid, ended=ended or end)


_NOTHING = AccountingResult(seconds=0, session_uid=None, ended=False)

#: An Accounting-On/-Off whose Event-Timestamp is older than this changes nothing (a replay, or
#: a packet that waited so long its restart says nothing about the sessions open now).
RESTART_MAX_AGE = timedelta(minutes=10)
#: ... and one whose Event-Timestamp is further ahead of keyledger's clock than this.
RESTART_MAX_AHEAD = timedelta(minutes=1)


def restart_moment(
    now: datetime, *, delay_seconds: int, event_timestamp: datetime | None
) -> datetime | None:
    """When the NAS restarted, by its Accounting-On/-Off: ``Event-Timestamp`` if present (None,
    nothing to do, if it is older than ``RESTART_MAX_AGE`` or ahead by more than
    ``RESTART_MAX_AHEAD``), otherwise now less ``Acct-Delay-Time`` (how long the NAS has been
    trying to send it). Whole seconds, rounded down, as the store keeps them."""
    if event_timestamp is not None:
        if event_timestamp < now - RESTART_MAX_AGE or event_timestamp > now + RESTART_MAX_AHEAD:
            return None
        moment = min(event_timestamp, now)
    else:
        moment = now - timedelta(seconds=max(0, delay_seconds))
    return moment.replace(microsecond=0)


def account_restart(
    conn: Connection,
    *,
    nas: Nas,
    nas_address: str,
    idle_seconds: int,
    delay_seconds: int = 0,
    event_timestamp: datetime | None = None,
) -> int:
    """Accounting-On or Accounting-Off from ``nas``'s device at ``nas_address``: it restarted
    (or is going down), so none of the sessions it had then is online any more. Each of its
    accounting sessions without a Stop last updated before the restart (``restart_moment``: a
    late or retransmitted Accounting-On leaves the sessions started since alone) is stopped as
    a Stop would: its hotspot session, if still open, ends with one ``hotspot.session_ended``
    event, consuming nothing more. Returns how many accounting sessions it stopped. Runs in the
    caller's write transaction; locks the vouchers (by id) before the rows."""
    before = restart_moment(utc_now(), delay_seconds=delay_seconds, event_timestamp=event_timestamp)
    if before is None:
        return 0

    def stale(lock: bool) -> list[Any]:
        return repository.open_accounting_sessions(
            conn, nas_id=nas.id, nas_address=nas_address, before=before, lock=lock
        )

    rows = stale(False)
    if not rows:
        return 0
    if conn.dialect.name == "postgresql":
        credential_ids = {int(row.credential_id) for row in rows if row.credential_id is not None}
        for credential_id in sorted(credential_ids):
            hotspot_repository.lock_voucher(conn, credential_id=credential_id)
        rows = stale(True)
    for row in rows:
        if row.hotspot_session_id is not None and row.ended_utc is None:
            _report(
                conn, nas=nas, session_uid=row.session_uid, seconds=0, end=True, idle=idle_seconds
            )
    repository.stop_accounting_sessions(conn, row_ids=[int(row.id) for row in rows], now=utc_now())
    return len(rows)


def _report(
    conn: Connection, *, nas: Nas, session_uid: UUID, seconds: int, end: bool, idle: int
) -> bool:
    """``report_usage`` of the whole growth, in one report; whether the session has ended."""
    try:
        usage = hotspot.report_usage(
            conn,
            scope=scope(nas),
            actor=actor(nas),
            session_uid=session_uid,
            elapsed_seconds=seconds,
            end=end,
            idle_seconds=idle,
        )
    except (SessionNotFound, RuleViolation):
        return True  # ended (by its client or idling) or gone: nothing to take
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
