"""voucher code keys: codes unique, searched and logged in with as a person reads them

Adds ``code_key`` and ``description_key`` to credentials: a voucher's code and description after
Unicode NFKC, case folding and NFKC again (``keyledger.kit.inputs.fold``, repeated here so that this
script stays what it is when the application changes). The live-voucher unique index moves from
``(property_id, value)`` to ``(property_id, code_key)``, and the substring search (0002) now
indexes the keys, so both databases fold case, accents and widths alike.

Existing live vouchers of one business whose codes are the same under the new key (``ABC1`` and
``abc1``, NFC and NFD, fullwidth digits): the oldest (lowest id) keeps the key; each younger one
keeps its row and its code as shown, but gets the key ``<key>\\x1f#<id>`` — a control character
no code may hold, so no code typed or searched matches it — until someone renames it (a PUT with a
free code). The ids are logged (never the codes).

Revision ID: 0009
Revises: 0007 (the integrator re-chains it after 0008)
Create Date: 2026-12-01 12:40:00
"""

from __future__ import annotations

import logging
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")

_LIVE_VOUCHERS = sa.text("kind = 'voucher' AND deleted_utc IS NULL")
_BATCH = 5_000


def _fold(text: str) -> str:
    return unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", text).casefold())


_SQLITE_SEARCH_DROP = (
    "DROP TRIGGER IF EXISTS credential_search_insert",
    "DROP TRIGGER IF EXISTS credential_search_delete",
    "DROP TRIGGER IF EXISTS credential_search_update",
    "DROP TABLE IF EXISTS credential_search",
)


def _sqlite_search(value: str, description: str) -> tuple[str, ...]:
    """0002's FTS5 trigram table and triggers over the columns named."""
    return (
        "CREATE VIRTUAL TABLE credential_search USING fts5("
        f"{value}, {description}, content='credentials', content_rowid='id', "
        "tokenize='trigram case_sensitive 0')",
        "CREATE TRIGGER credential_search_insert AFTER INSERT ON credentials "  # noqa: S608 - fixed column names
        "WHEN new.kind = 'voucher' BEGIN "
        f"INSERT INTO credential_search(rowid, {value}, {description}) "
        f"VALUES (new.id, new.{value}, new.{description}); END",
        "CREATE TRIGGER credential_search_delete AFTER DELETE ON credentials "  # noqa: S608 - fixed column names
        "WHEN old.kind = 'voucher' BEGIN "
        f"INSERT INTO credential_search(credential_search, rowid, {value}, {description}) "
        f"VALUES ('delete', old.id, old.{value}, old.{description}); END",
        "CREATE TRIGGER credential_search_update "  # noqa: S608 - fixed column names
        f"AFTER UPDATE OF {value}, {description} ON credentials "
        "WHEN old.kind = 'voucher' BEGIN "
        f"INSERT INTO credential_search(credential_search, rowid, {value}, {description}) "
        f"VALUES ('delete', old.id, old.{value}, old.{description}); "
        f"INSERT INTO credential_search(rowid, {value}, {description}) "
        f"VALUES (new.id, new.{value}, new.{description}); END",
        f"INSERT INTO credential_search(rowid, {value}, {description}) "  # noqa: S608 - fixed column names
        f"SELECT id, {value}, {description} FROM credentials WHERE kind = 'voucher'",
    )


def _postgresql_search(value: str, description: str) -> tuple[str, ...]:
    return (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        f"CREATE INDEX ix_credentials_{value.replace('lower(', '').rstrip(')')}_trgm "
        f"ON credentials USING gin ({value} gin_trgm_ops) WHERE kind = 'voucher'",
        f"CREATE INDEX ix_credentials_{description.replace('lower(', '').rstrip(')')}_trgm "
        f"ON credentials USING gin ({description} gin_trgm_ops) WHERE kind = 'voucher'",
    )


def upgrade() -> None:
    bind = op.get_bind()
    op.add_column("credentials", sa.Column("code_key", sa.Text(), nullable=True))
    op.add_column("credentials", sa.Column("description_key", sa.Text(), nullable=True))
    _fill_keys()
    op.drop_index(
        "uq_credentials_live_voucher_code",
        table_name="credentials",
        sqlite_where=_LIVE_VOUCHERS,
        postgresql_where=_LIVE_VOUCHERS,
    )
    op.create_index(
        "uq_credentials_live_voucher_key",
        "credentials",
        ["property_id", "code_key"],
        unique=True,
        sqlite_where=_LIVE_VOUCHERS,
        postgresql_where=_LIVE_VOUCHERS,
    )
    if bind.dialect.name == "sqlite":
        for statement in (*_SQLITE_SEARCH_DROP, *_sqlite_search("code_key", "description_key")):
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_credentials_value_trgm")
        op.execute("DROP INDEX IF EXISTS ix_credentials_description_trgm")
        for statement in _postgresql_search("code_key", "description_key"):
            op.execute(statement)


def _fill_keys() -> None:
    bind = op.get_bind()
    table = sa.table(
        "credentials",
        sa.column("id", sa.Integer),
        sa.column("property_id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("value", sa.String),
        sa.column("description", sa.Text),
        sa.column("deleted_utc", sa.DateTime),
        sa.column("code_key", sa.Text),
        sa.column("description_key", sa.Text),
    )
    rewrite = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values(code_key=sa.bindparam("key"), description_key=sa.bindparam("described"))
    )
    live_keys: set[tuple[int, str]] = set()
    renamed: list[int] = []
    after = 0
    while True:
        rows = bind.execute(
            sa.select(
                table.c.id,
                table.c.property_id,
                table.c.value,
                table.c.description,
                table.c.deleted_utc,
            )
            .where(table.c.kind == "voucher", table.c.id > after)
            .order_by(table.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        changes = []
        for row_id, property_id, value, description, deleted in rows:
            key = _fold(value)
            if deleted is None:
                if (property_id, key) in live_keys:
                    renamed.append(row_id)
                    key = f"{key}\x1f#{row_id}"
                else:
                    live_keys.add((property_id, key))
            changes.append(
                {
                    "row_id": row_id,
                    "key": key,
                    "described": None if description is None else _fold(description),
                }
            )
        bind.execute(rewrite, changes)
        after = rows[-1][0]
    if renamed:
        log.warning(
            "0009: %d live voucher(s) share a code with an older one under the new comparison "
            "(NFKC, case folded) and cannot be logged in with by code until renamed: ids %s",
            len(renamed),
            ", ".join(str(row_id) for row_id in renamed),
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in (*_SQLITE_SEARCH_DROP, *_sqlite_search("value", "description")):
            op.execute(statement)
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_credentials_code_key_trgm")
        op.execute("DROP INDEX IF EXISTS ix_credentials_description_key_trgm")
        for statement in _postgresql_search("lower(value)", "lower(description)"):
            op.execute(statement)
    op.drop_index(
        "uq_credentials_live_voucher_key",
        table_name="credentials",
        sqlite_where=_LIVE_VOUCHERS,
        postgresql_where=_LIVE_VOUCHERS,
    )
    op.create_index(
        "uq_credentials_live_voucher_code",
        "credentials",
        ["property_id", "value"],
        unique=True,
        sqlite_where=_LIVE_VOUCHERS,
        postgresql_where=_LIVE_VOUCHERS,
    )
    op.drop_column("credentials", "description_key")
    op.drop_column("credentials", "code_key")
