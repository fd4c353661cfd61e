"""access token scopes: what each access token may do, and which token an event's actor used

Adds ``connections.scopes`` (a JSON list of scope names, not null, by default ``[]``: a row
written without naming its scopes may do nothing): every token made before scopes existed gets
all seven, so it keeps working exactly as before. Adds
``events.actor_token_id`` (nullable): the access token an integration acted with; older events
have none. The list of scope names is a copy, not an import: the migration stays what it was
when the code moves on.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

EVERY_SCOPE = [
    "credentials:read",
    "credentials:write",
    "resources:read",
    "resources:write",
    "access:check",
    "hotspot",
    "events:read",
]


def upgrade() -> None:
    # Added NOT NULL with a default that grants nothing, then every existing token is given
    # every scope. No batch mode: rebuilding ``connections`` on SQLite fails while
    # ``connection_properties`` rows point at it (foreign keys are on), and an ALTER TABLE ADD
    # COLUMN with a default needs no rebuild on either database.
    op.add_column(
        "connections",
        sa.Column("scopes", sa.JSON(), nullable=False, server_default=sa.text("'[]'")),
    )
    table = sa.table("connections", sa.column("scopes", sa.JSON))
    op.get_bind().execute(sa.update(table).values(scopes=EVERY_SCOPE))
    op.add_column("events", sa.Column("actor_token_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    # Not batch mode: rebuilding ``events`` on SQLite would drop its immutability triggers
    # (SQLite 3.35+ drops a column in place).
    op.drop_column("events", "actor_token_id")
    op.drop_column("connections", "scopes")
