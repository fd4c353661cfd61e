"""RADIUS accounting: one row per connection (NAS record, device address, Acct-Session-Id)

A NAS record may be a network of several access points, each numbering its Acct-Session-Ids on
its own: the unique key of ``radius_sessions`` becomes (``nas_id``, ``nas_address``,
``acct_session_id``) instead of (``nas_id``, ``acct_session_id``), so two devices of one record
reusing an id keep a row each (docs/radius.md, "Accounting review"). Existing rows keep their
address, so they satisfy the new key. Self-contained; SQLite rebuilds the table (batch mode).

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 21:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD = "uq_radius_sessions_nas_id_acct_session_id"
_NEW = "uq_radius_sessions_nas_id_nas_address_acct_session_id"


def upgrade() -> None:
    with op.batch_alter_table("radius_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(_OLD, type_="unique")
        batch_op.create_unique_constraint(_NEW, ["nas_id", "nas_address", "acct_session_id"])


def downgrade() -> None:
    # Rows of two devices sharing an id would break the old key: keep the newest of each.
    op.execute(
        "DELETE FROM radius_sessions WHERE id NOT IN "
        "(SELECT MAX(id) FROM radius_sessions GROUP BY nas_id, acct_session_id)"
    )
    with op.batch_alter_table("radius_sessions", schema=None) as batch_op:
        batch_op.drop_constraint(_NEW, type_="unique")
        batch_op.create_unique_constraint(_OLD, ["nas_id", "acct_session_id"])
