"""Leaner indexes under the hot writes: open sessions by voucher, events by resource

Every hotspot start and usage report rewrites a session's ``last_report_utc``; with that column
in ``ix_hotspot_sessions_open`` each rewrite also moved an index entry (on SQLite one more page
written per start or report, on PostgreSQL no heap-only update). Every query of the index asks
for a voucher's open sessions (``credential_id = ? AND ended_utc IS NULL``), so the index becomes
``(credential_id) WHERE ended_utc IS NULL``: a rewrite of ``last_report_utc`` leaves it alone,
and an ended session leaves it.

Every event was an entry in ``ix_events_resource`` and ``ix_events_reader``, though only events
of a resource (door checks, resource changes) have a ``resource_uid``, and every query of those
indexes asks for one resource (``resource_uid = ?``, which implies ``IS NOT NULL``: both
databases then use a partial index). Both become ``WHERE resource_uid IS NOT NULL``: a hotspot,
RADIUS or credential event writes two index entries fewer. benchmarks/README.md, "Leaner indexes".

Plain CREATE/DROP INDEX (no table rebuild). On PostgreSQL, DROP INDEX takes an ACCESS EXCLUSIVE
lock on its table, held to the end of the migration's transaction (two builds over ``events``
included): reads and writes of ``hotspot_sessions`` and ``events`` (door checks, hotspot starts,
event listings) wait until the upgrade ends. On a large events table, upgrade in a quiet moment.
``hotspot_sessions.credential_id`` (a foreign key) keeps no index over ended sessions: nothing
deletes a credential row today (deletion is a ``deleted_utc`` mark); a purge that did would
check each deleted row against every session.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OPEN = "ended_utc IS NULL"
_OF_A_RESOURCE = "resource_uid IS NOT NULL"


def _partial(name: str, table: str, columns: list[str], where: str) -> None:
    op.create_index(
        name, table, columns, sqlite_where=sa.text(where), postgresql_where=sa.text(where)
    )


def upgrade() -> None:
    op.drop_index("ix_hotspot_sessions_open", table_name="hotspot_sessions")
    _partial("ix_hotspot_sessions_open", "hotspot_sessions", ["credential_id"], _OPEN)
    op.drop_index("ix_events_resource", table_name="events")
    _partial("ix_events_resource", "events", ["resource_uid", "id"], _OF_A_RESOURCE)
    op.drop_index("ix_events_reader", table_name="events")
    _partial("ix_events_reader", "events", ["resource_uid", "kind", "occurred_utc"], _OF_A_RESOURCE)


def downgrade() -> None:
    op.drop_index("ix_events_reader", table_name="events")
    op.create_index("ix_events_reader", "events", ["resource_uid", "kind", "occurred_utc"])
    op.drop_index("ix_events_resource", table_name="events")
    op.create_index("ix_events_resource", "events", ["resource_uid", "id"])
    op.drop_index("ix_hotspot_sessions_open", table_name="hotspot_sessions")
    op.create_index(
        "ix_hotspot_sessions_open",
        "hotspot_sessions",
        ["credential_id", "ended_utc", "last_report_utc"],
    )
