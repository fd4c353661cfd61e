"""SQL for Wi-Fi vouchers: paged, filtered, ordered lists and code look-ups."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    case,
    column,
    false,
    func,
    literal,
    select,
    table,
)

from keyledger.domain.credentials.models import (
    Credential,
    CredentialKind,
    VoucherCondition,
    VoucherField,
    VoucherQuery,
)
from keyledger.domain.credentials.repository import (  # key_columns: also read through here
    CREDENTIAL_COLUMNS,
    in_scope,
    key_columns,
    to_credential,
)
from keyledger.domain.properties.models import Property
from keyledger.kit.inputs import code_key, fold
from keyledger.store.schema import credentials as t

_COLUMN_OF: dict[VoucherField, Any] = {
    VoucherField.ID: t.c.id,
    VoucherField.ACCESS_CODE: t.c.value,
    VoucherField.DESCRIPTION: t.c.description,
    VoucherField.LAST_ACCESS: t.c.last_access,
    VoucherField.MINUTES_INCLUDED: t.c.minutes_included,
    VoucherField.MINUTES_LEFT: t.c.minutes_left,
    VoucherField.USER_LIMIT: t.c.user_limit,
    VoucherField.VALID_FROM: t.c.valid_from,
    VoucherField.VALID_TO: t.c.valid_to,
    VoucherField.UNIQUE_ID: t.c.uid,
    VoucherField.SYSTEM_ID: t.c.system_id,
    VoucherField.CREATED: t.c.created_utc,
    VoucherField.UPDATED: t.c.updated_utc,
    VoucherField.UPDATED_BY: t.c.updated_by,
}

#: Searched through a normalised copy (``keyledger.kit.inputs.fold``: NFKC, case folded) with a
#: substring index (PostgreSQL trigram GIN, SQLite FTS5 trigram; migration 0009), so both
#: databases fold case, accents and widths alike.
_SEARCHABLE = {
    VoucherField.ACCESS_CODE: "code_key",
    VoucherField.DESCRIPTION: "description_key",
}
_fts = table("credential_search", column("rowid"), column("code_key"), column("description_key"))

__all__ = ["codes_in_use", "key_columns", "live_vouchers", "select_voucher_page"]


def _escape_like(term: str) -> str:
    return term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _contains(conn: Connection, field: VoucherField, term: str) -> ColumnElement[bool]:
    """Case-insensitive substring match, through the trigram index where one serves."""
    key_column = _SEARCHABLE.get(field)
    if key_column is None:
        target = _COLUMN_OF[field]
        return func.lower(target).like(f"%{_escape_like(term.lower())}%", escape="\\")
    folded = fold(term)
    plain = not any(ch in folded for ch in "%_\\")
    if conn.dialect.name == "sqlite" and len(folded) >= 3 and plain:
        # FTS5's trigram tokenizer answers LIKE from its index.
        found = select(_fts.c.rowid).where(_fts.c[key_column].like(f"%{folded}%"))
        return t.c.id.in_(found)
    # Both sides are folded already: PostgreSQL's LIKE (trigram index) and SQLite's agree.
    return t.c[key_column].like(f"%{_escape_like(folded)}%", escape="\\")


def _business_of(properties: Mapping[int, Property]) -> Any:
    return case(
        {pid: literal(p.business_id) for pid, p in properties.items()},
        value=t.c.property_id,
        else_=literal(0),
    )


def _condition(
    conn: Connection, condition: VoucherCondition, properties: Mapping[int, Property]
) -> ColumnElement[bool]:
    if condition.field is VoucherField.BUSINESS:
        wanted = {int(str(value)) for value in condition.one_of or ()}
        property_ids = [pid for pid, p in properties.items() if p.business_id in wanted]
        return t.c.property_id.in_(property_ids) if property_ids else false()
    if condition.contains is not None:
        return _contains(conn, condition.field, condition.contains)
    target = _COLUMN_OF[condition.field]
    parts: list[ColumnElement[bool]] = []
    if condition.one_of is not None:
        parts.append(target.in_(list(condition.one_of)))
    if condition.at_least is not None:
        parts.append(target >= condition.at_least)
    if condition.at_most is not None:
        parts.append(target <= condition.at_most)
    return and_(*parts)


def select_voucher_page(
    conn: Connection, *, properties: Mapping[int, Property], query: VoucherQuery
) -> tuple[list[Credential], int]:
    where = [
        in_scope(list(properties), CredentialKind.VOUCHER),
        t.c.deleted_utc.is_(None),
        *(_condition(conn, c, properties) for c in query.conditions),
    ]
    total = conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one()
    if query.order_by is VoucherField.BUSINESS:
        key: Any = _business_of(properties)
    else:
        key = _COLUMN_OF[query.order_by]
    order = (
        [key.desc().nulls_last(), t.c.id.desc()]
        if query.descending
        else [
            key.asc().nulls_first(),
            t.c.id.asc(),
        ]
    )
    if query.order_by is VoucherField.ID:
        order = order[:1]
    statement = (
        select(*CREDENTIAL_COLUMNS)
        .where(*where)
        .order_by(*order)
        .limit(query.size)
        .offset((query.page - 1) * query.size)
    )
    return [to_credential(row, properties) for row in conn.execute(statement)], int(total)


def live_vouchers(
    conn: Connection,
    *,
    properties: Mapping[int, Property],
    ids: Sequence[int],
    lock: bool = False,
) -> dict[int, Credential]:
    """The live vouchers of these ids in scope; ``lock`` also locks their rows for the
    transaction (``FOR UPDATE`` on PostgreSQL), in ascending id order, so a read-modify-write
    of minutes or fields never loses a concurrent one and two writers never deadlock."""
    statement = select(*CREDENTIAL_COLUMNS).where(
        in_scope(list(properties), CredentialKind.VOUCHER),
        t.c.deleted_utc.is_(None),
        t.c.id.in_(list(ids)),
    )
    if lock:
        statement = statement.order_by(t.c.id).with_for_update()
    rows = conn.execute(statement)
    found = (to_credential(row, properties) for row in rows)
    return {credential.id: credential for credential in found}


def codes_in_use(conn: Connection, *, property_id: int, codes: Sequence[str]) -> set[str]:
    """Which of ``codes`` a live voucher of the business holds (the same code under
    ``code_key``: NFKC, case folded)."""
    keys = {code: code_key(code) for code in codes}
    rows = conn.execute(
        select(t.c.code_key).where(
            in_scope([property_id], CredentialKind.VOUCHER),
            t.c.deleted_utc.is_(None),
            t.c.code_key.in_(sorted(set(keys.values()))),
        )
    )
    taken = set(rows.scalars())
    return {code for code, key in keys.items() if key in taken}
