"""SQL for the event log (append-only)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, insert, select

from keyledger.callers.models import Actor
from keyledger.events.models import EventKind
from keyledger.store.schema import events


def append(
    conn: Connection,
    *,
    kind: EventKind,
    actor: Actor,
    now: datetime,
    property_id: int | None = None,
    credential_uid: UUID | None = None,
    resource_uid: UUID | None = None,
    outcome: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    append_many(
        conn,
        [
            {
                "kind": kind,
                "property_id": property_id,
                "credential_uid": credential_uid,
                "resource_uid": resource_uid,
                "outcome": outcome,
                "details": details,
            }
        ],
        actor=actor,
        now=now,
    )


def append_many(
    conn: Connection, entries: Sequence[dict[str, Any]], *, actor: Actor, now: datetime
) -> None:
    """Append events (dicts with kind, property_id, credential_uid, resource_uid, outcome,
    details) in one statement, all by ``actor`` at ``now``."""
    if not entries:
        return
    conn.execute(
        insert(events),
        [
            {
                "occurred_utc": now,
                "property_id": entry.get("property_id"),
                "kind": str(entry["kind"]),
                "actor_kind": actor.kind.value,
                "actor_id": actor.id,
                "actor_label": actor.label,
                "credential_uid": entry.get("credential_uid"),
                "resource_uid": entry.get("resource_uid"),
                "outcome": entry.get("outcome"),
                "details": entry.get("details"),
            }
            for entry in entries
        ],
    )


def refused_checks_since(conn: Connection, *, reader_uid: UUID, since: datetime) -> int:
    """Refused (not granted, not throttled) checks at a reader since ``since``."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(events)
            .where(
                events.c.resource_uid == reader_uid,
                events.c.kind == EventKind.ACCESS_CHECKED.value,
                events.c.occurred_utc >= since,
                events.c.outcome.not_in(["Granted", "Throttled"]),
            )
        ).scalar_one()
    )


def last_throttled(conn: Connection, *, reader_uid: UUID, since: datetime) -> datetime | None:
    """When the reader was last locked, if that happened after ``since``."""
    found = conn.execute(
        select(func.max(events.c.occurred_utc)).where(
            events.c.resource_uid == reader_uid,
            events.c.kind == EventKind.READER_THROTTLED.value,
            events.c.occurred_utc > since,
        )
    ).scalar_one_or_none()
    return found if isinstance(found, datetime) else None
