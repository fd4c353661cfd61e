"""Door checks. A credential opens a reader when it is active, valid at that instant, has the
permission flag of the reader's kind, and the reader is the credential's resource or one of its
ancestors (a credential without a resource: the flags apply across its property). Every check is
recorded; more than ``policy.failures`` refusals at one reader within the window lock it, and every
refusal counts against the caller's and the property's guessing budgets (``guessing.py``).

A reader is a resource of one property: the same uid in another property is another reader, with
its own failures, lock and events. A portfolio token naming a uid that several of its properties
hold must say which (``EnterpriseId``); nothing picks one."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.access import repository
from keyledger.domain.access.models import REFUSAL_ORDER, Decision, DoorCheck, ReaderPolicy, Reason
from keyledger.domain.access.repository import DoorView
from keyledger.domain.credentials.models import Credential, flag_for
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget, Guesser
from keyledger.domain.properties.models import Scope
from keyledger.domain.resources.models import Resource
from keyledger.domain.resources.service import ambiguous_resource
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import ResourceNotFound
from keyledger.store import Store
from keyledger.store.locks import advisory_key, serialise_on
from keyledger.store.writer import GroupWriter


def evaluate(
    credential: Credential, reader: Resource, reached: set[UUID] | None, check: DoorCheck
) -> Reason:
    if not credential.is_active:
        return Reason.DELETED
    assert credential.valid_from is not None and credential.valid_to is not None
    if check.at < credential.valid_from:
        return Reason.NOT_YET_VALID
    if check.at >= credential.valid_to:
        return Reason.EXPIRED
    if not flag_for(reader.kind, credential.permissions):
        return Reason.NO_PERMISSION
    if reached is not None and reader.uid not in reached:
        return Reason.NO_PERMISSION
    return Reason.GRANTED


def _decide(view: DoorView, check: DoorCheck) -> tuple[Reason, UUID | None]:
    if not view.candidates:
        return Reason.UNKNOWN_CREDENTIAL, None
    outcomes = [
        (evaluate(credential, view.reader, reached, check), credential.uid)
        for credential, reached in view.candidates
    ]
    for wanted in (Reason.GRANTED, *REFUSAL_ORDER):
        for reason, uid in outcomes:
            if reason is wanted:
                return reason, uid
    return Reason.UNKNOWN_CREDENTIAL, None  # pragma: no cover - every reason is listed


def decide(
    store: Store,
    *,
    scope: Scope,
    check: DoorCheck,
    policy: ReaderPolicy,
    now: datetime,
    caller: str,
    budget: GuessBudget,
) -> Decision:
    """The answer to a door check, from one consistent read (``record`` keeps it)."""
    with store.read() as conn:
        views = repository.door_view(
            conn,
            properties=scope.by_id,
            property_ids=scope.property_ids,
            reader_uid=check.reader_uid,
            token_type=check.token_type,
            value=check.value,
            since=now - timedelta(seconds=policy.cooldown_seconds),
            sealer=store.sealer,
        )
        if not views:
            raise ResourceNotFound(
                f"No reader resource {check.reader_uid} in scope.", subject="resource"
            )
        if len(views) > 1:
            raise ambiguous_resource(check.reader_uid)
        (view,) = views
        budget_until = guessing.throttled_until(
            conn,
            guesser=Guesser(caller, view.reader.property_id),
            budget=budget,
            now=now,
        )
    if budget_until is not None:
        return Decision(
            granted=False,
            reason=Reason.THROTTLED,
            credential_uid=None,
            at=check.at,
            reader_uid=view.reader.uid,
            property_id=view.reader.property_id,
            throttled_until=budget_until,
            caller=caller,
        )
    if view.locked_since is not None:
        return Decision(
            granted=False,
            reason=Reason.THROTTLED,
            credential_uid=None,
            at=check.at,
            reader_uid=view.reader.uid,
            property_id=view.reader.property_id,
            throttled_until=view.locked_since + timedelta(seconds=policy.cooldown_seconds),
            caller=caller,
        )
    reason, credential_uid = _decide(view, check)
    return Decision(
        granted=reason is Reason.GRANTED,
        reason=reason,
        credential_uid=credential_uid,
        at=check.at,
        reader_uid=view.reader.uid,
        property_id=view.reader.property_id,
        throttled_until=None,
        caller=caller,
    )


def _guesser(decision: Decision) -> Guesser:
    return Guesser(decision.caller, decision.property_id)


def record_locks(decision: Decision) -> list[int]:
    """The advisory locks ``record`` takes for a decision (a group commit takes those of all its
    pieces first, in key order, so two groups never wait for each other in a cycle): the reader
    (its property and uid) and the guessing budgets, under which ``record`` re-reads the reader's
    lock and the budgets — for a grant too. A decision throttled already takes none."""
    if decision.reason is Reason.THROTTLED:
        return []
    return [
        advisory_key("reader", decision.property_id, decision.reader_uid.bytes),
        *guessing.lock_keys(_guesser(decision)),
    ]


def _throttled(decision: Decision, until: datetime) -> Decision:
    return replace(
        decision, granted=False, reason=Reason.THROTTLED, credential_uid=None, throttled_until=until
    )


def _recheck(
    conn: Connection,
    *,
    decision: Decision,
    policy: ReaderPolicy,
    now: datetime,
    budget: GuessBudget,
) -> Decision:
    """The decision as it stands when its write runs (under ``record_locks``): ``decide`` read
    the budgets and the reader's lock before the writes of the checks in flight with it were
    committed, so a budget used up or a reader locked meanwhile makes it ``Throttled``."""
    if decision.reason is Reason.THROTTLED:
        return decision
    until = guessing.throttled_until(conn, guesser=_guesser(decision), budget=budget, now=now)
    if until is not None:
        return _throttled(decision, until)
    locked = events.last_throttled(
        conn,
        property_id=decision.property_id,
        reader_uid=decision.reader_uid,
        since=now - timedelta(seconds=policy.cooldown_seconds),
    )
    if locked is not None:
        return _throttled(decision, locked + timedelta(seconds=policy.cooldown_seconds))
    return decision


def record(
    conn: Connection,
    *,
    decision: Decision,
    check: DoorCheck,
    actor: Actor,
    policy: ReaderPolicy,
    now: datetime,
    budget: GuessBudget,
) -> Decision:
    """Re-decide under the reader's and the budgets' locks (``_recheck``), append the final
    decision to the event log and return it (it is the answer); a refusal that makes more than
    ``policy.failures`` at this reader within the window locks the reader, and counts against
    the guessing budgets. A miss counted is always within the caller's own budget, so one token
    adds at most its budget to its property's."""
    # Checks at one reader and of one guesser are re-decided and counted one writer at a time
    # (advisory locks on PostgreSQL; SQLite's write lock already), so exactly the refusal that
    # passes a limit locks the reader or uses the budget up, and none after it is answered.
    serialise_on(conn, record_locks(decision))
    decision = _recheck(conn, decision=decision, policy=policy, now=now, budget=budget)
    events.append(
        conn,
        records.access_checked(
            property_id=decision.property_id,
            credential_uid=decision.credential_uid,
            reader_uid=decision.reader_uid,
            outcome=decision.reason.value,
            token_type=check.token_type,
            at=check.at,
        ),
        actor=actor,
        now=now,
    )
    if decision.reason in (Reason.GRANTED, Reason.THROTTLED):
        return decision
    guessing.count_miss(conn, guesser=_guesser(decision), budget=budget, actor=actor, now=now)
    refused = events.refused_checks_since(
        conn,
        property_id=decision.property_id,
        reader_uid=decision.reader_uid,
        since=now - timedelta(seconds=policy.window_seconds),
    )
    if refused <= policy.failures:
        return decision
    if events.last_throttled(
        conn,
        property_id=decision.property_id,
        reader_uid=decision.reader_uid,
        since=now - timedelta(seconds=policy.cooldown_seconds),
    ):
        return decision  # locked already by a check recorded in the same group
    until = now + timedelta(seconds=policy.cooldown_seconds)
    events.append(
        conn,
        records.reader_throttled(
            property_id=decision.property_id,
            reader_uid=decision.reader_uid,
            refused_checks=refused,
            until=until,
        ),
        actor=actor,
        now=now,
    )
    return decision


async def check_door(
    store: Store,
    writer: GroupWriter,
    *,
    scope: Scope,
    actor: Actor,
    caller: str,
    reader_uid: UUID,
    token_type: str,
    value: str,
    at: datetime | None,
    policy: ReaderPolicy,
    budget: GuessBudget,
) -> Decision:
    """A door check as the server answers it: ``decide`` from one consistent read, then
    ``record`` through the group writer (in the write transaction the concurrent checks share,
    under ``record_locks``); the answer is the decision as that write found it, so a budget used
    up or a reader locked by checks in flight with this one makes it ``Throttled``. ``at`` is
    the instant checked (None: now); ``caller`` is the guessing budget's caller."""
    now = utc_now()
    check = DoorCheck(reader_uid=reader_uid, token_type=token_type, value=value, at=at or now)
    decision = decide(
        store, scope=scope, check=check, policy=policy, now=now, caller=caller, budget=budget
    )
    return await writer.run(
        partial(
            record,
            decision=decision,
            check=check,
            actor=actor,
            policy=policy,
            now=now,
            budget=budget,
        ),
        locks=record_locks(decision),
    )
