"""guessing budgets and withdrawn sessions: guess_counts, hotspot_sessions.end_reason

``guess_counts`` holds the refused codes of each subject (an access token, a property) per fixed
window, for the guessing budgets (docs/access.md). ``hotspot_sessions.end_reason`` records why a
session ended when it did not end by its client's report (its voucher deleted, expired or used
up), so that the next usage report can say so.

Revision ID: 0011
Revises: 0009 (the integrator re-chains it after 0010)
Create Date: 2026-12-01 13:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# Timestamps are created as sa.DateTime(timezone=True): the DDL of the live
# keyledger.store.schema.UtcDateTime (a TypeDecorator over that type), written out so this
# migration never imports the live schema (docs/architecture.md, "Migrations").

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "guess_counts",
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("misses", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("subject", "window_start", name=op.f("pk_guess_counts")),
    )
    op.add_column("hotspot_sessions", sa.Column("end_reason", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("hotspot_sessions", schema=None) as batch_op:
        batch_op.drop_column("end_reason")
    op.drop_table("guess_counts")
