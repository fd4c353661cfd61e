"""Creating and finding properties."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import Connection

from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.properties import repository
from keyledger.domain.properties.models import Property
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import Conflict, InvalidInput
from keyledger.store import Store

MAX_BUSINESS_ID = 2**53 - 1


def add_property(
    store: Store,
    *,
    name: str,
    enterprise_id: UUID | None = None,
    business_id: int | None = None,
    timezone: str = "UTC",
) -> Property:
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("A property name has 1 to 200 characters.", subject="name")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Unknown time zone {timezone!r}.", subject="timezone") from None
    if business_id is not None and not 1 <= business_id <= MAX_BUSINESS_ID:
        raise InvalidInput("A business id is a positive integer.", subject="business_id")
    enterprise_id = enterprise_id or uuid.uuid4()
    with store.write() as conn:
        if repository.by_enterprise_ids(conn, [enterprise_id]):
            raise Conflict(f"Enterprise {enterprise_id} exists already.", subject="enterprise")
        if business_id is None:
            business_id = repository.next_business_id(conn)
        elif repository.by_business_id(conn, business_id) is not None:
            raise Conflict(f"Business {business_id} exists already.", subject="business_id")
        now = utc_now()
        created = repository.insert_property(
            conn,
            enterprise_id=enterprise_id,
            business_id=business_id,
            name=name,
            timezone=timezone,
            now=now,
        )
        events.append(
            conn,
            records.property_created(property_id=created.id, name=name, business_id=business_id),
            actor=Actor.system(),
            now=now,
        )
        return created


def import_property(
    conn: Connection,
    *,
    enterprise_id: UUID,
    business_id: int,
    name: str,
    timezone: str,
    now: datetime,
) -> Property:
    """A property that existed before this store saw it (the demo's): the one with
    ``enterprise_id`` if the store has it, else created with these ids (the next free business
    id if ``business_id`` is taken), in the caller's transaction and without an event (an import
    is not something anyone did here)."""
    found = find_property(conn, enterprise_id)
    if found is not None:
        return found
    if repository.by_business_id(conn, business_id) is not None:
        business_id = repository.next_business_id(conn)
    return repository.insert_property(
        conn,
        enterprise_id=enterprise_id,
        business_id=business_id,
        name=name,
        timezone=timezone,
        now=now,
    )


def find_property(conn: Connection, enterprise_id: UUID) -> Property | None:
    """The property of ``enterprise_id``, in the caller's transaction; None if there is none."""
    found = repository.by_enterprise_ids(conn, [enterprise_id])
    return found[0] if found else None


def list_properties(store: Store) -> list[Property]:
    with store.read() as conn:
        return repository.all_properties(conn)


def set_collision_check(store: Store, *, enterprise_id: UUID, enabled: bool) -> Property:
    with store.write() as conn:
        found = repository.by_enterprise_ids(conn, [enterprise_id])
        if not found:
            raise InvalidInput(f"Unknown enterprise {enterprise_id}.", subject="enterprise")
        repository.set_collision_check(conn, found[0].id, enabled=enabled)
        events.append(
            conn,
            records.property_changed(property_id=found[0].id, collision_check=enabled),
            actor=Actor.system(),
            now=utc_now(),
        )
    return replace(found[0], collision_check=enabled)
