"""SQL for door checks: everything a decision needs, in one statement.

A door check is the hottest read keyledger serves, so it asks once instead of walking the tree
query by query: the reader, when it was last locked, every reservation token with the checked
Type and Value (found by its fingerprint, see sealing.py) in the reader's property, and each
token's resource with its ancestors. The tree is at most four levels deep (a parent is always of a
higher kind: building, floor, room, bed), so four joins reach every ancestor.

The same reach is computed in Python by ``Tree.reach`` (``credentials/collisions.py``), which the
collision rule walks on a tree in memory; both rest on ``ResourceKind.rank`` (four kinds, a parent
always of a lower rank). Kept as two because the door check must stay one statement; a change to
the tree model changes both, and tests/domain/access/test_reach.py checks on random trees, on
SQLite and PostgreSQL, that they name the same resources.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, Select, and_, bindparam, func, literal, select

from keyledger.domain.credentials.models import Credential, CredentialKind
from keyledger.domain.credentials.repository import (
    CREDENTIAL_COLUMNS,
    ID_POSITION,
    to_credential,
)
from keyledger.domain.events.models import EventKind
from keyledger.domain.properties.models import Property
from keyledger.domain.resources.models import Resource, ResourceKind
from keyledger.kit.sealing import ValueSealer
from keyledger.store.schema import credentials, events, resources


@dataclass(frozen=True, slots=True)
class DoorView:
    reader: Resource
    locked_since: datetime | None
    #: Each candidate token with the uids its resource lies in (None: no resource, so the whole
    #: property).
    candidates: list[tuple[Credential, set[UUID] | None]]


def _statement() -> Select[Any]:
    reader = resources.alias("reader")
    levels = [resources.alias(f"level{n}") for n in range(4)]
    locked = (
        select(func.max(events.c.occurred_utc))
        .where(
            events.c.resource_uid == reader.c.uid,
            events.c.property_id == reader.c.property_id,
            events.c.kind == EventKind.READER_THROTTLED.value,
            events.c.occurred_utc > bindparam("since"),
        )
        .scalar_subquery()
    )
    joined = reader.outerjoin(
        credentials,
        and_(
            credentials.c.property_id == reader.c.property_id,
            credentials.c.kind == literal(CredentialKind.RESERVATION.value, literal_execute=True),
            credentials.c.value_fp.in_(bindparam("fingerprints", expanding=True)),
            credentials.c.token_type == bindparam("token_type"),
        ),
    )
    parent_column = credentials.c.resource_id
    for level in levels:
        joined = joined.outerjoin(
            level,
            and_(level.c.property_id == reader.c.property_id, level.c.uid == parent_column),
        )
        parent_column = level.c.parent_uid
    return (
        select(
            *CREDENTIAL_COLUMNS,
            reader.c.property_id.label("reader_property_id"),
            reader.c.uid.label("reader_uid"),
            reader.c.parent_uid.label("reader_parent_uid"),
            reader.c.kind.label("reader_kind"),
            reader.c.name.label("reader_name"),
            locked.label("locked_since"),
            *(level.c.uid.label(f"level{n}_uid") for n, level in enumerate(levels)),
        )
        .select_from(joined)
        .where(
            reader.c.property_id.in_(bindparam("property_ids", expanding=True)),
            reader.c.uid == bindparam("reader"),
        )
    )


_DOOR = _statement()
_CREDENTIAL_WIDTH = len(CREDENTIAL_COLUMNS)


def door_view(
    conn: Connection,
    *,
    properties: Mapping[int, Property],
    property_ids: Sequence[int],
    reader_uid: UUID,
    token_type: str,
    value: str,
    since: datetime,
    sealer: ValueSealer,
) -> list[DoorView]:
    """What a check of ``token_type``/``value`` at ``reader_uid`` needs: one view per property
    of ``property_ids`` holding a resource ``reader_uid`` (none: no such reader; several: the
    uid is ambiguous, each property's reader is another reader)."""
    rows = conn.execute(
        _DOOR,
        {
            "property_ids": list(property_ids),
            "reader": reader_uid,
            "token_type": token_type,
            "fingerprints": sealer.fingerprints([value]),
            "since": since,
        },
    ).all()
    views: list[DoorView] = []
    for reader_property in dict.fromkeys(row._mapping["reader_property_id"] for row in rows):
        views.append(
            _view(
                [r for r in rows if r._mapping["reader_property_id"] == reader_property],
                properties,
                sealer,
            )
        )
    return views


def _view(rows: Sequence[Any], properties: Mapping[int, Property], sealer: ValueSealer) -> DoorView:
    first = rows[0]._mapping
    reader = Resource(
        property_id=first["reader_property_id"],
        uid=first["reader_uid"],
        parent_uid=first["reader_parent_uid"],
        kind=ResourceKind(first["reader_kind"]),
        name=first["reader_name"],
    )
    candidates: list[tuple[Credential, set[UUID] | None]] = []
    for row in rows:
        if row[ID_POSITION] is None:
            continue  # the outer join found no token
        credential = to_credential(row[:_CREDENTIAL_WIDTH], properties, sealer)
        mapping = row._mapping
        reached = (
            None
            if credential.resource_id is None
            else {
                mapping[f"level{n}_uid"] for n in range(4) if mapping[f"level{n}_uid"] is not None
            }
        )
        candidates.append((credential, reached))
    locked = first["locked_since"]
    return DoorView(
        reader=reader,
        locked_since=locked if isinstance(locked, datetime) else None,
        candidates=candidates,
    )
