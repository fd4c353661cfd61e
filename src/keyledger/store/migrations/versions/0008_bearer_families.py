"""bearer families: every bearer token pair knows the password grant it descends from

Adds ``family_uid`` to ``bearer_tokens``: a password grant starts a family, each refresh passes
it on. Replaying a refresh token that was already rotated revokes the whole family (OAuth 2.0
Security BCP, refresh token rotation). Each existing pair becomes a family of its own.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 12:50:00
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("bearer_tokens", sa.Column("family_uid", sa.Uuid(), nullable=True))
    bind = op.get_bind()
    table = sa.table("bearer_tokens", sa.column("id", sa.Integer), sa.column("family_uid", sa.Uuid))
    ids = bind.execute(sa.select(table.c.id).where(table.c.family_uid.is_(None))).scalars().all()
    if ids:
        bind.execute(
            sa.update(table)
            .where(table.c.id == sa.bindparam("row_id"))
            .values(family_uid=sa.bindparam("family")),
            [{"row_id": row_id, "family": uuid.uuid4()} for row_id in ids],
        )
    with op.batch_alter_table("bearer_tokens", schema=None) as batch_op:
        batch_op.alter_column("family_uid", existing_type=sa.Uuid(), nullable=False)
        batch_op.create_index(
            batch_op.f("ix_bearer_tokens_family_uid"), ["family_uid"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("bearer_tokens", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bearer_tokens_family_uid"))
        batch_op.drop_column("family_uid")
