"""per-kind partial indexes: reservations' own, one per orderable field of live vouchers

Each kind gets indexes of its own (``WHERE kind = …``), so a voucher query never picks a
reservation index and the reverse; both databases use partial indexes with bound parameters.

Every Nexudus list is scoped to a business and to live vouchers, ordered by a field then ``id``.
An index ``(property_id, <field>, id) WHERE kind = 'voucher' AND deleted_utc IS NULL`` serves
the filter, the ordering in both directions (nulls first ascending, last descending, as the
dialect promises: SQLite's default, PostgreSQL's ``NULLS FIRST``) and the page count.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 21:55:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: index name suffix → column
FIELDS = {
    "id": "id",
    "description": "description",
    "last_access": "last_access",
    "minutes_included": "minutes_included",
    "minutes_left": "minutes_left",
    "user_limit": "user_limit",
    "valid_from": "valid_from",
    "valid_to": "valid_to",
    "created": "created_utc",
    "updated": "updated_utc",
}
INDEX_NAMES = tuple(f"ix_vouchers_live_{name}" for name in FIELDS)
_LIVE = "kind = 'voucher' AND deleted_utc IS NULL"
_RESERVATION_INDEXES = (
    (
        "ix_credentials_scope_created",
        "ix_reservations_created",
        ["property_id", "created_utc", "uid"],
    ),
    ("ix_credentials_scope_updated", "ix_reservations_updated", ["property_id", "updated_utc"]),
    ("ix_credentials_scope_valid_to", "ix_reservations_valid_to", ["property_id", "valid_to"]),
)


def upgrade() -> None:
    # Superseded by ix_vouchers_live_id, which also covers the page count.
    op.drop_index("ix_credentials_scope_id", table_name="credentials")
    for old, new, columns in _RESERVATION_INDEXES:
        op.drop_index(old, table_name="credentials")
        op.create_index(
            new,
            "credentials",
            columns,
            sqlite_where=sa.text("kind = 'reservation'"),
            postgresql_where=sa.text("kind = 'reservation'"),
        )
    postgresql = op.get_bind().dialect.name == "postgresql"
    for name, column in FIELDS.items():
        if column == "id":
            key = "property_id, id"
        elif postgresql:
            key = f"property_id, {column} NULLS FIRST, id"
        else:
            key = f"property_id, {column}, id"
        op.execute(f"CREATE INDEX ix_vouchers_live_{name} ON credentials ({key}) WHERE {_LIVE}")


def downgrade() -> None:
    for name in INDEX_NAMES:
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for old, new, columns in _RESERVATION_INDEXES:
        op.drop_index(new, table_name="credentials")
        op.create_index(old, "credentials", ["property_id", "kind", *columns[1:]])
    op.create_index("ix_credentials_scope_id", "credentials", ["property_id", "kind", "id"])
