"""SQL for the event log (append-only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, bindparam, func, insert, select

from keyledger.domain.events.models import Actor, ActorKind, Event, EventKind, EventQuery, NewEvent
from keyledger.store.direct import Direct
from keyledger.store.schema import events

# Appended on every decision (door checks, hotspot starts, RADIUS): built once.
_APPEND = insert(events)
_COLUMNS = [
    "occurred_utc",
    "property_id",
    "kind",
    "actor_kind",
    "actor_id",
    "actor_label",
    "actor_token_id",
    "credential_uid",
    "resource_uid",
    "outcome",
    "details",
]
# One event: on the driver's cursor, compiled once (store/direct.py).
_APPEND_ONE = Direct(_APPEND, keys=_COLUMNS)


def _row(event: NewEvent, actor: Actor, now: datetime) -> dict[str, object]:
    return {
        "occurred_utc": now,
        "property_id": event.property_id,
        "kind": str(event.kind),
        "actor_kind": actor.kind.value,
        "actor_id": actor.id,
        "actor_label": actor.label,
        "actor_token_id": actor.token_id,
        "credential_uid": event.credential_uid,
        "resource_uid": event.resource_uid,
        "outcome": event.outcome,
        "details": event.details,
    }


def append(conn: Connection, event: NewEvent, *, actor: Actor, now: datetime) -> None:
    _APPEND_ONE.execute(conn, _row(event, actor, now))


def append_each(
    conn: Connection, new_events: Sequence[tuple[NewEvent, Actor]], *, now: datetime
) -> None:
    """Append events, each by its own actor, all at ``now``, in one driver call."""
    _APPEND_ONE.execute_many(conn, [_row(event, actor, now) for event, actor in new_events])


def append_many(
    conn: Connection, new_events: Sequence[NewEvent], *, actor: Actor, now: datetime
) -> None:
    """Append events (made by the builders of ``events/models.py``) in one statement, all by
    ``actor`` at ``now``."""
    if not new_events:
        return
    conn.execute(_APPEND, [_row(event, actor, now) for event in new_events])


def refused_checks_since(
    conn: Connection, *, property_id: int, reader_uid: UUID, since: datetime
) -> int:
    """Refused (not granted, not throttled) checks at a reader (a property's resource: the same
    uid in another property is another reader) since ``since``."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(events)
            .where(
                events.c.resource_uid == reader_uid,
                events.c.property_id == property_id,
                events.c.kind == EventKind.ACCESS_CHECKED.value,
                events.c.occurred_utc >= since,
                events.c.outcome.not_in(["Granted", "Throttled"]),
            )
        ).scalar_one()
    )


_LAST_THROTTLED = select(func.max(events.c.occurred_utc)).where(
    events.c.resource_uid == bindparam("reader_uid"),
    events.c.property_id == bindparam("property_id"),
    events.c.kind == EventKind.READER_THROTTLED.value,
    events.c.occurred_utc > bindparam("since"),
)


def last_throttled(
    conn: Connection, *, property_id: int, reader_uid: UUID, since: datetime
) -> datetime | None:
    """When the reader (of ``property_id``) was last locked, if that happened after ``since``."""
    found = conn.execute(
        _LAST_THROTTLED, {"property_id": property_id, "reader_uid": reader_uid, "since": since}
    ).scalar_one_or_none()
    return found if isinstance(found, datetime) else None


def select_events(
    conn: Connection, *, property_ids: Sequence[int] | None, query: EventQuery
) -> list[Event]:
    """A page of events, newest first (by id); ``property_ids`` None means every event."""
    conditions: list[ColumnElement[bool]] = []
    if property_ids is not None:
        conditions.append(events.c.property_id.in_(list(property_ids)))
    if query.credential_uid is not None:
        conditions.append(events.c.credential_uid == query.credential_uid)
    if query.resource_uid is not None:
        conditions.append(events.c.resource_uid == query.resource_uid)
    if query.kinds:
        conditions.append(events.c.kind.in_([kind.value for kind in query.kinds]))
    if query.start is not None:
        conditions.append(events.c.occurred_utc >= query.start)
    if query.end is not None:
        conditions.append(events.c.occurred_utc < query.end)
    if query.before is not None:
        conditions.append(events.c.id < query.before)
    rows = conn.execute(
        select(
            events.c.id,
            events.c.occurred_utc,
            events.c.property_id,
            events.c.kind,
            events.c.actor_kind,
            events.c.actor_id,
            events.c.actor_label,
            events.c.actor_token_id,
            events.c.credential_uid,
            events.c.resource_uid,
            events.c.outcome,
            events.c.details,
        )
        .where(*conditions)
        .order_by(events.c.id.desc())
        .limit(query.limit)
    )
    return [
        Event(
            id=row[0],
            occurred_utc=row[1],
            property_id=row[2],
            kind=EventKind(row[3]),
            actor_kind=ActorKind(row[4]),
            actor_id=row[5],
            actor_label=row[6],
            actor_token_id=row[7],
            credential_uid=row[8],
            resource_uid=row[9],
            outcome=row[10],
            details=row[11] or {},
        )
        for row in rows
    ]
