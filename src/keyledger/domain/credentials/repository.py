"""The credentials table's row contract, shared by every reader and writer of credentials.

Column knowledge lives here and nowhere else: which columns a credential is read from
(``CREDENTIAL_COLUMNS``, also selected by access/ and the kind repositories), how a
row becomes a ``Credential`` (``to_credential``) and back (``row_of``), which columns an update of
each kind writes, and the writes common to both kinds. Queries of one kind are in
``reservation_repository.py`` and ``voucher_repository.py``. Every query is scoped to a list of
property ids and one kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    insert,
    literal,
    select,
    text,
    update,
)

from keyledger.domain.credentials.models import (
    Credential,
    CredentialKind,
    Permissions,
    TokenType,
)
from keyledger.domain.properties.models import Property
from keyledger.kit.inputs import code_key, fold
from keyledger.kit.sealing import UnreadableValue, ValueSealer
from keyledger.store.schema import credentials as t

CREDENTIAL_COLUMNS = (
    t.c.id,
    t.c.uid,
    t.c.property_id,
    t.c.kind,
    t.c.value,
    t.c.token_type,
    t.c.service_order_id,
    t.c.companionship_id,
    t.c.resource_id,
    t.c.serial_number,
    t.c.valid_from,
    t.c.valid_to,
    t.c.perm_bed,
    t.c.perm_room,
    t.c.perm_floor,
    t.c.perm_building,
    t.c.description,
    t.c.minutes_included,
    t.c.minutes_left,
    t.c.user_limit,
    t.c.last_access,
    t.c.system_id,
    t.c.created_utc,
    t.c.updated_utc,
    t.c.created_by,
    t.c.updated_by,
    t.c.deleted_utc,
    t.c.value_sealed,
)

#: The columns ``to_credential`` reads, by name, in the order it unpacks them. Their positions
#: in a row are looked up in ``CREDENTIAL_COLUMNS`` once, here: reordering or inserting a column
#: there cannot shift what is read. A row is unpacked by one ``itemgetter`` call (as fast as the
#: literal ``row[0]`` .. ``row[27]`` it replaces: see docs/architecture.md, "Domain folders").
_READ = (
    "id",
    "uid",
    "property_id",
    "kind",
    "value",
    "token_type",
    "service_order_id",
    "companionship_id",
    "resource_id",
    "serial_number",
    "valid_from",
    "valid_to",
    "perm_bed",
    "perm_room",
    "perm_floor",
    "perm_building",
    "description",
    "minutes_included",
    "minutes_left",
    "user_limit",
    "last_access",
    "system_id",
    "created_utc",
    "updated_utc",
    "created_by",
    "updated_by",
    "deleted_utc",
    "value_sealed",
)
_POSITION = {column.name: index for index, column in enumerate(CREDENTIAL_COLUMNS)}
_unpack = itemgetter(*(_POSITION[name] for name in _READ))
#: Where ``id`` sits in a row selected with ``CREDENTIAL_COLUMNS`` (an outer join's missing
#: credential shows as None there).
ID_POSITION = _POSITION["id"]


def to_credential(
    row: Sequence[Any], properties: Mapping[int, Property], sealer: ValueSealer | None = None
) -> Credential:
    """The credential of a row of ``CREDENTIAL_COLUMNS`` (or a row starting with them);
    ``sealer`` opens a sealed value (only door credentials are sealed, so voucher reads pass
    none)."""
    (
        row_id,
        uid,
        property_id,
        kind,
        value,
        token_type,
        service_order_id,
        companionship_id,
        resource_id,
        serial_number,
        valid_from,
        valid_to,
        perm_bed,
        perm_room,
        perm_floor,
        perm_building,
        description,
        minutes_included,
        minutes_left,
        user_limit,
        last_access,
        system_id,
        created_utc,
        updated_utc,
        created_by,
        updated_by,
        deleted_utc,
        sealed,
    ) = _unpack(row)
    if sealed is not None:
        if sealer is None:
            raise UnreadableValue(f"credential {uid}: its value is sealed")
        value = sealer.open(uid, sealed)
    return Credential(
        id=row_id,
        uid=uid,
        property=properties[property_id],
        kind=CredentialKind(kind),
        value=value,
        token_type=None if token_type is None else TokenType(token_type),
        service_order_id=service_order_id,
        companionship_id=companionship_id,
        resource_id=resource_id,
        serial_number=serial_number,
        valid_from=valid_from,
        valid_to=valid_to,
        permissions=Permissions(
            bed=perm_bed, room=perm_room, floor=perm_floor, building=perm_building
        ),
        description=description,
        minutes_included=minutes_included,
        minutes_left=minutes_left,
        user_limit=user_limit,
        last_access=last_access,
        system_id=system_id,
        created_utc=created_utc,
        updated_utc=updated_utc,
        created_by=created_by,
        updated_by=updated_by,
        deleted_utc=deleted_utc,
    )


def key_columns(code: str, description: str | None) -> dict[str, Any]:
    """The normalised copies stored beside a voucher's code and description."""
    return {
        "code_key": code_key(code),
        "description_key": None if description is None else fold(description),
    }


def row_of(credential: Credential, sealer: ValueSealer) -> dict[str, Any]:
    """The store row of a credential (every column but ``id``): a door credential's value
    sealed or in clear, with its fingerprint; a voucher's code in clear."""
    permissions = credential.permissions
    if credential.kind is CredentialKind.RESERVATION:
        value_columns = sealer.columns(credential.uid, credential.value)
    else:
        value_columns = {
            "value": credential.value,
            "value_sealed": None,
            "value_fp": None,
            **key_columns(credential.value, credential.description),
        }
    return {
        "uid": credential.uid,
        "property_id": credential.property.id,
        "kind": credential.kind.value,
        **value_columns,
        "token_type": None if credential.token_type is None else credential.token_type.value,
        "service_order_id": credential.service_order_id,
        "companionship_id": credential.companionship_id,
        "resource_id": credential.resource_id,
        "serial_number": credential.serial_number,
        "valid_from": credential.valid_from,
        "valid_to": credential.valid_to,
        "perm_bed": permissions.bed,
        "perm_room": permissions.room,
        "perm_floor": permissions.floor,
        "perm_building": permissions.building,
        "description": credential.description,
        "minutes_included": credential.minutes_included,
        "minutes_left": credential.minutes_left,
        "user_limit": credential.user_limit,
        "last_access": credential.last_access,
        "system_id": credential.system_id,
        "created_utc": credential.created_utc,
        "updated_utc": credential.updated_utc,
        "created_by": credential.created_by,
        "updated_by": credential.updated_by,
        "deleted_utc": credential.deleted_utc,
    }


#: The columns an update of a reservation token writes.
RESERVATION_MUTABLE = (
    "value",
    "value_sealed",
    "value_fp",
    "valid_from",
    "valid_to",
    "perm_bed",
    "perm_room",
    "perm_floor",
    "perm_building",
    "updated_utc",
    "updated_by",
)
#: The columns an update of a voucher writes when its code changes.
VOUCHER_MUTABLE = (
    "value",
    "description",
    "minutes_included",
    "minutes_left",
    "user_limit",
    "valid_from",
    "valid_to",
    "system_id",
    "updated_utc",
    "updated_by",
    "deleted_utc",
    "code_key",
    "description_key",
)
#: The columns an update of a voucher writes when its code stays: the code's key is written only
#: when the code changes (a key migration 0009 set apart for a look-alike of an older code stays
#: as it is, so the voucher can still be edited).
VOUCHER_MUTABLE_KEEPING_KEY = tuple(name for name in VOUCHER_MUTABLE if name != "code_key")


def in_scope(property_ids: Sequence[int], kind: CredentialKind) -> ColumnElement[bool]:
    """Rows of these properties and this kind.

    ``kind`` is rendered as a literal: it then matches the partial indexes' predicates exactly,
    and SQLite skips re-checking it (and ``deleted_utc IS NULL``) row by row, so counts are
    index-only (measured: 127 ms → 12.5 ms for 125,000 of 1,000,000 vouchers).
    """
    kind_is = t.c.kind == literal(kind.value, literal_execute=True)
    if len(property_ids) == 1:
        return and_(t.c.property_id == property_ids[0], kind_is)
    return and_(t.c.property_id.in_(list(property_ids)), kind_is)


def by_uids(
    conn: Connection,
    *,
    properties: Mapping[int, Property],
    kind: CredentialKind,
    uids: Sequence[UUID],
    sealer: ValueSealer | None = None,
    lock: bool = False,
) -> dict[UUID, Credential]:
    """The credentials of these uids in scope; ``lock`` also locks their rows for the
    transaction, in ascending id order (the one order every multi-row write takes)."""
    statement = select(*CREDENTIAL_COLUMNS).where(
        in_scope(list(properties), kind), t.c.uid.in_(list(uids))
    )
    if lock:
        statement = statement.order_by(t.c.id).with_for_update()
    rows = conn.execute(statement)
    found = (to_credential(row, properties, sealer) for row in rows)
    return {credential.uid: credential for credential in found}


def insert_credentials(conn: Connection, rows: Sequence[dict[str, Any]]) -> list[int]:
    """Insert rows (dicts keyed by column name); their ids, in the order given."""
    if not rows:
        return []
    result = conn.execute(
        insert(t).returning(t.c.id, sort_by_parameter_order=True),
        list(rows),
    )
    return [row[0] for row in result]


def insert_credentials_quietly(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows without reading their row ids back: one batched statement instead of the
    row-at-a-time RETURNING that SQLite needs to keep ids in order (for callers that address
    credentials by uid)."""
    if rows:  # an empty parameter list would insert one row of defaults
        conn.execute(insert(t), list(rows))


def rewrite_credentials(
    conn: Connection, rows: Sequence[dict[str, Any]], *, columns: Sequence[str]
) -> None:
    """Write ``columns`` of each row (a dict of column values and ``row_id``)."""
    statement = update(t).where(t.c.id == bindparam("row_id"))
    conn.execute(statement, [{name: row[name] for name in ("row_id", *columns)} for row in rows])


def mark_deleted(
    conn: Connection, *, row_ids: Sequence[int], now: datetime, actor_label: str
) -> int:
    result = conn.execute(
        update(t)
        .where(t.c.id.in_(list(row_ids)), t.c.deleted_utc.is_(None))
        .values(deleted_utc=now, updated_utc=now, updated_by=actor_label)
    )
    return int(result.rowcount)


def insert_credentials_keeping_ids(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows that carry their own ``id``; on PostgreSQL the id sequence then moves past
    the largest id, so later inserts never reuse one (SQLite's rowid does so by itself)."""
    if not rows:
        return
    conn.execute(insert(t), list(rows))
    if conn.dialect.name == "postgresql":
        conn.execute(
            text(
                "SELECT setval(pg_get_serial_sequence('credentials', 'id'), "
                "(SELECT max(id) FROM credentials))"
            )
        )


def existing_uids(conn: Connection, uids: Sequence[UUID]) -> set[UUID]:
    """Which of these credential uids are taken (in any property, of any kind)."""
    return set(conn.execute(select(t.c.uid).where(t.c.uid.in_(list(uids)))).scalars())
