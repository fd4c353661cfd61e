"""RADIUS accounting: one row per connection and hotspot session

A NAS that reuses an Acct-Session-Id for a new session (a restart without Accounting-On, a
counter come round) may still send reports of the earlier session under it (a queued Stop, or
two live connections sharing the id). With one row per connection the row was rebound to
whichever session reported last, each time from 0, so the other session's whole time was
charged again at its next report. The unique key of ``radius_sessions`` becomes (``nas_id``,
``nas_address``, ``acct_session_id``, ``session_uid``): each session under an id keeps its own
count (docs/radius.md, "Accounting review"). Existing rows satisfy the new key. Self-contained;
SQLite rebuilds the table (batch mode).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "uq_radius_sessions_nas_id_nas_address_acct_session_id"
_NEW = "uq_radius_sessions_connection"


def upgrade() -> None:
    with op.batch_alter_table("radius_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(_OLD, type_="unique")
        batch_op.create_unique_constraint(
            _NEW, ["nas_id", "nas_address", "acct_session_id", "session_uid"]
        )


def downgrade() -> None:
    # Rows of two sessions under one id would break the old key: keep the newest of each.
    op.execute(
        "DELETE FROM radius_sessions WHERE id NOT IN "
        "(SELECT MAX(id) FROM radius_sessions GROUP BY nas_id, nas_address, acct_session_id)"
    )
    with op.batch_alter_table("radius_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(_NEW, type_="unique")
        batch_op.create_unique_constraint(_OLD, ["nas_id", "nas_address", "acct_session_id"])
