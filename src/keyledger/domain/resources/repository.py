"""SQL for the resource tree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from keyledger.domain.resources.models import Resource, ResourceKind
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


# Built once: building a statement costs more than running it (benchmarks/README.md).
_FIND = select(*_COLUMNS).where(
    t.c.property_id.in_(bindparam("property_ids", expanding=True)), t.c.uid == bindparam("uid")
)


def find(conn: Connection, *, property_ids: Sequence[int], uid: UUID) -> list[Resource]:
    """The resources ``uid`` of ``property_ids`` (one per property holding it)."""
    rows = conn.execute(_FIND, {"property_ids": list(property_ids), "uid": uid})
    return [_to_resource(row) for row in rows]


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
