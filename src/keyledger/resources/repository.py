"""SQL for the resource tree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update

from keyledger.resources.models import Resource, ResourceKind
from keyledger.store.schema import resources as t

_COLUMNS = (t.c.property_id, t.c.uid, t.c.parent_uid, t.c.kind, t.c.name)


def _to_resource(row: Sequence[Any]) -> Resource:
    return Resource(
        property_id=row[0], uid=row[1], parent_uid=row[2], kind=ResourceKind(row[3]), name=row[4]
    )


def tree_of(conn: Connection, property_ids: Sequence[int]) -> dict[tuple[int, UUID], Resource]:
    rows = conn.execute(
        select(*_COLUMNS).where(t.c.property_id.in_(list(property_ids))).order_by(t.c.uid)
    )
    return {(r.property_id, r.uid): r for r in map(_to_resource, rows)}


def find(conn: Connection, *, property_ids: Sequence[int], uid: UUID) -> Resource | None:
    row = conn.execute(
        select(*_COLUMNS).where(t.c.property_id.in_(list(property_ids)), t.c.uid == uid)
    ).first()
    return None if row is None else _to_resource(row)


def chain(conn: Connection, *, property_id: int, uid: UUID) -> list[Resource]:
    """The resource and its ancestors, nearest first (the tree is at most four levels deep)."""
    found: list[Resource] = []
    current: UUID | None = uid
    while current is not None and len(found) < 16:
        resource = find(conn, property_ids=[property_id], uid=current)
        if resource is None:
            break
        found.append(resource)
        current = resource.parent_uid
    return found


def upsert(conn: Connection, resource: Resource, *, now: datetime) -> None:
    values = {"parent_uid": resource.parent_uid, "kind": resource.kind.value, "name": resource.name}
    changed = conn.execute(
        update(t)
        .where(t.c.property_id == resource.property_id, t.c.uid == resource.uid)
        .values(**values, updated_utc=now)
    ).rowcount
    if not changed:
        conn.execute(
            insert(t),
            {
                "property_id": resource.property_id,
                "uid": resource.uid,
                **values,
                "created_utc": now,
                "updated_utc": now,
            },
        )


def remove(conn: Connection, *, property_id: int, uid: UUID) -> int:
    return int(
        conn.execute(delete(t).where(t.c.property_id == property_id, t.c.uid == uid)).rowcount
    )
