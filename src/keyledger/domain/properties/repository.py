"""SQL for properties."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, insert, select

from keyledger.domain.properties.models import Property
from keyledger.store.schema import properties

_COLUMNS = (
    properties.c.id,
    properties.c.enterprise_id,
    properties.c.business_id,
    properties.c.name,
    properties.c.timezone,
    properties.c.collision_check,
)


def _to_property(row: Sequence[Any]) -> Property:
    return Property(
        id=row[0],
        enterprise_id=row[1],
        business_id=row[2],
        name=row[3],
        timezone=row[4],
        collision_check=bool(row[5]),
    )


def by_enterprise_ids(conn: Connection, enterprise_ids: Iterable[UUID]) -> list[Property]:
    rows = conn.execute(
        select(*_COLUMNS).where(properties.c.enterprise_id.in_(list(enterprise_ids)))
    )
    return [_to_property(row) for row in rows]


def by_ids(conn: Connection, property_ids: Sequence[int]) -> list[Property]:
    rows = conn.execute(select(*_COLUMNS).where(properties.c.id.in_(list(property_ids))))
    return [_to_property(row) for row in rows]


def by_business_id(conn: Connection, business_id: int) -> Property | None:
    row = conn.execute(select(*_COLUMNS).where(properties.c.business_id == business_id)).first()
    return None if row is None else _to_property(row)


def all_properties(conn: Connection) -> list[Property]:
    return [_to_property(row) for row in conn.execute(select(*_COLUMNS).order_by(properties.c.id))]


def set_collision_check(conn: Connection, property_id: int, *, enabled: bool) -> None:
    conn.execute(
        properties.update().where(properties.c.id == property_id).values(collision_check=enabled)
    )


def next_business_id(conn: Connection) -> int:
    highest = conn.execute(select(func.max(properties.c.business_id))).scalar_one()
    return 10_000_001 if highest is None else int(highest) + 1


def insert_property(
    conn: Connection,
    *,
    enterprise_id: UUID,
    business_id: int,
    name: str,
    timezone: str,
    now: datetime,
) -> Property:
    property_id = conn.execute(
        insert(properties).returning(properties.c.id),
        {
            "enterprise_id": enterprise_id,
            "business_id": business_id,
            "name": name,
            "timezone": timezone,
            "created_utc": now,
        },
    ).scalar_one()
    return Property(
        id=property_id,
        enterprise_id=enterprise_id,
        business_id=business_id,
        name=name,
        timezone=timezone,
    )


def collision_check(conn: Connection, property_id: int) -> bool:
    """The property's collision switch as stored now."""
    found = conn.execute(
        select(properties.c.collision_check).where(properties.c.id == property_id)
    ).scalar_one_or_none()
    return bool(found)
