"""RADIUS: network access servers and their accounting sessions

Adds ``nas_clients`` (the hotspots that may ask keyledger over RADIUS: business, address or
network, shared secret sealed like door values, CoA port, whether Message-Authenticator may be
missing) and ``radius_sessions`` (each NAS's accounting sessions on hotspot sessions: the highest
Acct-Session-Time counted, and the state of their Disconnect-Request). Self-contained: the
columns are written out here, not imported from the schema module.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 15:45:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "nas_clients",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("uid", sa.Uuid(), nullable=False),
        sa.Column("property_id", _ROW_ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("secret_sealed", sa.LargeBinary(), nullable=True),
        sa.Column("coa_port", sa.Integer(), nullable=False),
        sa.Column("require_message_authenticator", sa.Boolean(), nullable=False),
        sa.Column("created_utc", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["property_id"], ["properties.id"], name="fk_nas_clients_property_id_properties"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_nas_clients"),
        sa.UniqueConstraint("uid", name="uq_nas_clients_uid"),
    )
    op.create_table(
        "radius_sessions",
        sa.Column("id", _ROW_ID, autoincrement=True, nullable=False),
        sa.Column("nas_id", _ROW_ID, nullable=False),
        sa.Column("acct_session_id", sa.String(length=253), nullable=False),
        sa.Column("session_uid", sa.Uuid(), nullable=False),
        sa.Column("user_name", sa.String(length=253), nullable=False),
        sa.Column("calling_station_id", sa.String(length=253), nullable=False),
        sa.Column("nas_address", sa.String(length=64), nullable=False),
        sa.Column("session_time", sa.BigInteger(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
        sa.Column("disconnect_attempts", sa.Integer(), nullable=False),
        sa.Column("disconnect_after_utc", _UTC, nullable=True),
        sa.Column("disconnect_outcome", sa.String(length=16), nullable=True),
        sa.Column("updated_utc", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["nas_id"], ["nas_clients.id"], name="fk_radius_sessions_nas_id_nas_clients"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_radius_sessions"),
        sa.UniqueConstraint(
            "nas_id", "acct_session_id", name="uq_radius_sessions_nas_id_acct_session_id"
        ),
    )
    op.create_index("ix_radius_sessions_open", "radius_sessions", ["stopped", "disconnect_outcome"])
    op.create_index("ix_radius_sessions_session_uid", "radius_sessions", ["session_uid"])


def downgrade() -> None:
    op.drop_index("ix_radius_sessions_session_uid", table_name="radius_sessions")
    op.drop_index("ix_radius_sessions_open", table_name="radius_sessions")
    op.drop_table("radius_sessions")
    op.drop_table("nas_clients")
