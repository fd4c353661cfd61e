"""SQL for reservation tokens (Mews door credentials): pages, look-ups by value and place, and
the rewriting of door values under a new key (``rekeying.py``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    func,
    literal,
    select,
    tuple_,
    update,
)

from keyledger.domain.credentials.models import (
    ActivityState,
    Credential,
    CredentialKind,
    ReservationTokenQuery,
    TimeInterval,
)
from keyledger.domain.credentials.repository import CREDENTIAL_COLUMNS, in_scope, to_credential
from keyledger.domain.properties.models import Property
from keyledger.kit.sealing import ValueSealer, key_id_in_sql
from keyledger.store import Store
from keyledger.store.schema import credentials as t

# Built once (door checks and every add/update run it).
_WITH_VALUES = select(*CREDENTIAL_COLUMNS).where(
    t.c.property_id == bindparam("property_id"),
    t.c.kind == literal(CredentialKind.RESERVATION.value, literal_execute=True),
    t.c.value_fp.in_(bindparam("fingerprints", expanding=True)),
)


def _within(column: Any, interval: TimeInterval) -> ColumnElement[bool]:
    if interval.is_instant:
        return column == interval.start  # type: ignore[no-any-return]
    return and_(column >= interval.start, column < interval.end)


def _validity_overlaps(
    interval: TimeInterval, *, valid_from: Any = t.c.valid_from, valid_to: Any = t.c.valid_to
) -> ColumnElement[bool]:
    """Validity ``[valid_from, valid_to)`` overlaps the interval (or contains the instant)."""
    if interval.is_instant:
        return and_(valid_from <= interval.start, valid_to > interval.start)
    return and_(valid_from < interval.end, valid_to > interval.start)


def _unindexed(column: Any) -> Any:
    """The column's value, in a form SQLite cannot look up in an index (same type, same value)."""
    return func.coalesce(column, column)


def position_of(
    conn: Connection, *, property_ids: Sequence[int], kind: CredentialKind, uid: UUID
) -> tuple[datetime, UUID] | None:
    """The (created, uid) sort key of a credential in scope, whatever its state."""
    row = conn.execute(
        select(t.c.created_utc, t.c.uid).where(in_scope(property_ids, kind), t.c.uid == uid)
    ).first()
    return None if row is None else (row[0], row[1])


def select_reservation_page(
    conn: Connection,
    *,
    properties: Mapping[int, Property],
    query: ReservationTokenQuery,
    after: tuple[datetime, UUID] | None,
    sealer: ValueSealer,
) -> list[Credential]:
    conditions: list[ColumnElement[bool]] = [in_scope(list(properties), CredentialKind.RESERVATION)]
    if query.credential_ids is not None:
        conditions.append(t.c.uid.in_(query.credential_ids))
    if query.service_order_ids is not None:
        conditions.append(t.c.service_order_id.in_(query.service_order_ids))
    if query.states == frozenset({ActivityState.ACTIVE}):
        conditions.append(t.c.deleted_utc.is_(None))
    elif query.states == frozenset({ActivityState.DELETED}):
        conditions.append(t.c.deleted_utc.is_not(None))
    times: list[ColumnElement[bool]] = []
    if query.colliding is not None:
        times.append(_validity_overlaps(query.colliding))
    if query.updated is not None:
        times.append(_within(t.c.updated_utc, query.updated))
    if (
        times
        and conn.dialect.name == "sqlite"
        and len(properties) == 1
        and query.credential_ids is None
        and query.service_order_ids is None
        and _matches_at_least(conn, [*conditions, *times], DENSE_RANGE)
    ):
        # Read in page order (newest first) and stop after Count matches; see below.
        times = []
        if query.colliding is not None:
            times.append(
                _validity_overlaps(
                    query.colliding,
                    valid_from=_unindexed(t.c.valid_from),
                    valid_to=_unindexed(t.c.valid_to),
                )
            )
        if query.updated is not None:
            times.append(_within(_unindexed(t.c.updated_utc), query.updated))
    conditions.extend(times)
    if after is not None:
        conditions.append(tuple_(t.c.created_utc, t.c.uid) < tuple_(*after))
    statement = (
        select(*CREDENTIAL_COLUMNS)
        .where(*conditions)
        .order_by(t.c.created_utc.desc(), t.c.uid.desc())
        .limit(query.count)
    )
    return [to_credential(row, properties, sealer) for row in conn.execute(statement)]


#: A time filter matching at least this many tokens is read in page order (see below).
DENSE_RANGE = 20_000


def _matches_at_least(conn: Connection, conditions: list[ColumnElement[bool]], enough: int) -> bool:
    """Whether the filters match ``enough`` tokens, counting no further than that.

    Without histograms SQLite cannot tell a narrow UpdatedUtc/CollidingUtc window (a few changed
    tokens: use the time index, then sort them) from one covering most of the property (then
    sorting every match costs ~0.5 s at a million tokens; reading the creation-order index newest
    first and stopping after ``Count`` matches costs milliseconds). Counting up to ``enough`` on
    the time index tells them apart in a few milliseconds.
    """
    probe = select(literal(1)).where(*conditions).limit(enough).subquery()
    return int(conn.execute(select(func.count()).select_from(probe)).scalar_one()) >= enough


def properties_of_service_orders(
    conn: Connection, *, property_ids: Sequence[int], service_order_ids: Sequence[UUID]
) -> dict[UUID, set[int]]:
    """Which properties already hold tokens of each service order."""
    rows = conn.execute(
        select(t.c.service_order_id, t.c.property_id)
        .where(
            in_scope(property_ids, CredentialKind.RESERVATION),
            t.c.service_order_id.in_(list(service_order_ids)),
        )
        .distinct()
    )
    found: dict[UUID, set[int]] = {}
    for service_order_id, property_id in rows:
        found.setdefault(service_order_id, set()).add(property_id)
    return found


def reservation_tokens_with_values(
    conn: Connection,
    *,
    properties: Mapping[int, Property],
    property_id: int,
    values: Sequence[str],
    sealer: ValueSealer,
) -> list[Credential]:
    """Every reservation token of a property whose Value is one of ``values``, any state."""
    rows = conn.execute(
        _WITH_VALUES, {"property_id": property_id, "fingerprints": sealer.fingerprints(values)}
    )
    return [to_credential(row, properties, sealer) for row in rows]


def active_reservation_tokens_at(
    conn: Connection,
    *,
    properties: Mapping[int, Property],
    property_id: int,
    resource_ids: Sequence[UUID],
    sealer: ValueSealer,
) -> list[Credential]:
    """The live reservation tokens of a property held at one of ``resource_ids``."""
    if not resource_ids:
        return []
    rows = conn.execute(
        select(*CREDENTIAL_COLUMNS).where(
            in_scope([property_id], CredentialKind.RESERVATION),
            t.c.deleted_utc.is_(None),
            t.c.resource_id.in_(list(resource_ids)),
        )
    )
    return [to_credential(row, properties, sealer) for row in rows]


# Rewriting door values under the current key (rekeying.py).

_RESERVATIONS = t.c.kind == literal(CredentialKind.RESERVATION.value, literal_execute=True)

_REWRITE_VALUE = (
    update(t)
    .where(
        t.c.id == bindparam("row_id"),
        t.c.value == bindparam("old_value"),
        t.c.value_sealed.is_not_distinct_from(bindparam("old_sealed")),
    )
    .values(
        value=bindparam("new_value"),
        value_sealed=bindparam("new_sealed"),
        value_fp=bindparam("new_fp"),
    )
)


def sealed_key_counts(conn: Connection) -> list[tuple[bytes, int]]:
    """How many door credential values are sealed with each key (raw key id, count)."""
    key_id = key_id_in_sql(t.c.value_sealed)
    rows = conn.execute(
        select(key_id, func.count())
        .where(_RESERVATIONS, t.c.value_sealed.is_not(None))
        .group_by(key_id)
    ).all()
    return [(bytes(raw), int(count)) for raw, count in rows]


def value_batch(conn: Connection, *, after: int, size: int) -> list[Sequence[Any]]:
    """The next ``size`` door credentials after row id ``after``: id, uid, value, sealed."""
    return list(
        conn.execute(
            select(t.c.id, t.c.uid, t.c.value, t.c.value_sealed)
            .where(_RESERVATIONS, t.c.id > after)
            .order_by(t.c.id)
            .limit(size)
        )
    )


def rewrite_value(conn: Connection, item: Mapping[str, Any]) -> int:
    """Compare and set one value (``row_id``, ``old_value``, ``old_sealed``, ``new_value``,
    ``new_sealed``, ``new_fp``): 1 if the row still held what was read, else 0."""
    return int(conn.execute(_REWRITE_VALUE, dict(item)).rowcount)


def compact(store: Store) -> None:
    """Rebuild the credentials storage so values rewritten leave nothing in free space
    (SQLite: VACUUM of the file; PostgreSQL: VACUUM FULL of the table). Outside any transaction,
    so it takes the store rather than a connection."""
    if store.dialect == "sqlite":
        # Outside any transaction: the raw connection is in autocommit mode (engine.py).
        raw = store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM FULL credentials")
