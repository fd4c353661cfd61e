"""sealed values: door credential values found by keyed fingerprint, sealed with a key

Adds ``value_sealed`` and ``value_fp`` to credentials and looks reservation tokens up by
fingerprint instead of by value. Existing values stay in clear with a keyless fingerprint;
``keyledger admin rotate-key`` seals them under ``KEYLEDGER_ENCRYPTION_KEY`` (see
keyledger/kit/sealing.py; the keyless fingerprint is frozen in this file).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 03:10:00
"""

from __future__ import annotations

import hmac
import importlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# 0002's voucher index builder (a module name starting with a digit cannot be imported by name).
_vouchers = importlib.import_module("keyledger.store.migrations.versions.0002_vouchers")

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_RESERVATIONS = sa.text("kind = 'reservation'")
_BATCH = 5_000

# Frozen here (not imported from keyledger.kit.sealing): the keyless fingerprint as it was when
# this migration was written. The live module may change its scheme; the values this migration
# wrote, and their fingerprints, stay what they were (a later migration would re-fingerprint).
_KEYLESS_FINGERPRINT_KEY = b"keyledger/value-fingerprint/keyless/v1"


def _keyless_fingerprint(value: str) -> bytes:
    return hmac.digest(_KEYLESS_FINGERPRINT_KEY, value.encode("utf-8"), "sha256")


def upgrade() -> None:
    # Plain ALTER TABLE: a batch rebuild of credentials would drop 0002's search triggers.
    op.add_column("credentials", sa.Column("value_sealed", sa.LargeBinary(), nullable=True))
    op.add_column("credentials", sa.Column("value_fp", sa.LargeBinary(length=32), nullable=True))
    _fingerprint_existing_values()
    if op.get_bind().dialect.name == "sqlite":
        # Stores searched before 0002 indexed door values too (FTS5 'rebuild'): vouchers only now.
        _vouchers.reindex_sqlite_search()
    op.drop_index(
        "ix_reservations_value",
        table_name="credentials",
        sqlite_where=_RESERVATIONS,
        postgresql_where=_RESERVATIONS,
    )
    op.create_index(
        "ix_reservations_value_fp",
        "credentials",
        ["property_id", "value_fp"],
        unique=False,
        sqlite_where=_RESERVATIONS,
        postgresql_where=_RESERVATIONS,
    )


def _fingerprint_existing_values() -> None:
    bind = op.get_bind()
    table = sa.table(
        "credentials",
        sa.column("id", sa.Integer),
        sa.column("kind", sa.String),
        sa.column("value", sa.String),
        sa.column("value_fp", sa.LargeBinary),
    )
    rewrite = (
        sa.update(table)
        .where(table.c.id == sa.bindparam("row_id"))
        .values(value_fp=sa.bindparam("fp"))
    )
    after = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.value)
            .where(table.c.kind == "reservation", table.c.id > after)
            .order_by(table.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            return
        bind.execute(
            rewrite,
            [{"row_id": row_id, "fp": _keyless_fingerprint(value)} for row_id, value in rows],
        )
        after = rows[-1][0]


def downgrade() -> None:
    sealed = op.get_bind().execute(
        sa.text("SELECT count(*) FROM credentials WHERE value_sealed IS NOT NULL")
    )
    if sealed.scalar_one():
        raise RuntimeError(
            "sealed credential values would be lost: run `keyledger admin rotate-key --decrypt` "
            "first"
        )
    op.drop_index(
        "ix_reservations_value_fp",
        table_name="credentials",
        sqlite_where=_RESERVATIONS,
        postgresql_where=_RESERVATIONS,
    )
    op.create_index(
        "ix_reservations_value",
        "credentials",
        ["property_id", "value"],
        unique=False,
        sqlite_where=_RESERVATIONS,
        postgresql_where=_RESERVATIONS,
    )
    op.drop_column("credentials", "value_fp")
    op.drop_column("credentials", "value_sealed")
