"""failed-login epoch: enable-user and set-password forgive a user's failed logins

Adds ``auth_failures_epoch`` to ``users`` (0 for every existing user). The failed-authentication
brake keys an e-mail's counts with it (keyledger/web/auth_throttle.py), and enabling a user or
setting its password advances it, so failures counted before no longer refuse anyone, on every
worker and whichever storage holds the counts (Redis or a worker's memory).

Revision ID: 0012
Revises: 0009 (the integrator re-chains it after 0010 and 0011)
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD/DROP COLUMN on both databases: a batch (table copy) on SQLite would drop `users`,
    # which memberships and bearer tokens refer to.
    op.add_column(
        "users",
        sa.Column("auth_failures_epoch", sa.Integer(), nullable=False, server_default="0"),
    )


def downgrade() -> None:
    op.drop_column("users", "auth_failures_epoch")
