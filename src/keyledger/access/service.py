"""Door checks. A credential opens a reader when it is active, valid at that instant, has the
permission flag of the reader's kind, and the reader is the credential's resource or one of its
ancestors (a credential without a resource: the flags apply across its property). Every check is
recorded; more than ``policy.failures`` refusals at one reader within the window lock it."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from sqlalchemy import Connection

from keyledger.access.models import REFUSAL_ORDER, Decision, DoorCheck, ReaderPolicy, Reason
from keyledger.callers.models import Actor, Scope
from keyledger.clock import format_utc, utc_now
from keyledger.credentials import repository as credentials
from keyledger.credentials.models import Credential, Permissions
from keyledger.errors import ResourceNotFound
from keyledger.events import repository as events
from keyledger.events.models import EventKind
from keyledger.resources import repository as resources
from keyledger.resources.models import Resource, ResourceKind
from keyledger.store import Store


def flag_for(kind: ResourceKind, permissions: Permissions) -> bool:
    return {
        ResourceKind.BUILDING: permissions.building,
        ResourceKind.FLOOR: permissions.floor,
        ResourceKind.ROOM: permissions.room,
        ResourceKind.BED: permissions.bed,
    }[kind]


def reach(conn: Connection, credential: Credential) -> set[UUID] | None:
    """The resources a credential's resource lies in (itself and its ancestors);
    None for a credential without a resource (it reaches the whole property)."""
    if credential.resource_id is None:
        return None
    chain = resources.chain(conn, property_id=credential.property.id, uid=credential.resource_id)
    return {r.uid for r in chain}


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


def _decide(
    conn: Connection, scope: Scope, reader: Resource, check: DoorCheck
) -> tuple[Reason, UUID | None]:
    candidates = [
        candidate
        for candidate in credentials.reservation_tokens_with_values(
            conn, properties=scope.by_id, property_id=reader.property_id, values=[check.value]
        )
        if candidate.token_type == check.token_type
    ]
    if not candidates:
        return Reason.UNKNOWN_CREDENTIAL, None
    outcomes = [(evaluate(c, reader, reach(conn, c), check), c.uid) for c in candidates]
    for wanted in (Reason.GRANTED, *REFUSAL_ORDER):
        for reason, uid in outcomes:
            if reason is wanted:
                return reason, uid
    return Reason.UNKNOWN_CREDENTIAL, None  # pragma: no cover - every reason is listed


def check_door(
    store: Store, *, scope: Scope, actor: Actor, check: DoorCheck, policy: ReaderPolicy
) -> Decision:
    now = utc_now()
    with store.write() as conn:
        reader = resources.find(conn, property_ids=scope.property_ids, uid=check.reader_uid)
        if reader is None:
            raise ResourceNotFound(
                f"No reader resource {check.reader_uid} in scope.", subject="resource"
            )
        locked = events.last_throttled(
            conn, reader_uid=reader.uid, since=now - timedelta(seconds=policy.cooldown_seconds)
        )
        until = None
        if locked is not None:
            reason, credential_uid = Reason.THROTTLED, None
            until = locked + timedelta(seconds=policy.cooldown_seconds)
        else:
            reason, credential_uid = _decide(conn, scope, reader, check)
        events.append(
            conn,
            kind=EventKind.ACCESS_CHECKED,
            actor=actor,
            now=now,
            property_id=reader.property_id,
            credential_uid=credential_uid,
            resource_uid=reader.uid,
            outcome=reason.value,
            details={"Type": check.token_type, "At": format_utc(check.at)},
        )
        if reason not in (Reason.GRANTED, Reason.THROTTLED):
            refused = events.refused_checks_since(
                conn, reader_uid=reader.uid, since=now - timedelta(seconds=policy.window_seconds)
            )
            if refused > policy.failures:
                until = now + timedelta(seconds=policy.cooldown_seconds)
                events.append(
                    conn,
                    kind=EventKind.READER_THROTTLED,
                    actor=actor,
                    now=now,
                    property_id=reader.property_id,
                    resource_uid=reader.uid,
                    outcome=Reason.THROTTLED.value,
                    details={"RefusedChecks": refused, "Until": format_utc(until)},
                )
    return Decision(
        granted=reason is Reason.GRANTED,
        reason=reason,
        credential_uid=credential_uid,
        at=check.at,
        reader_uid=reader.uid,
        throttled_until=until if reason is Reason.THROTTLED else None,
    )
