"""The miss counts of guessing budgets: one ``guess_counts`` row per subject and window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from keyledger.store.schema import guess_counts as t

_MISSES = select(t.c.subject, t.c.misses).where(
    t.c.subject.in_(bindparam("subjects", expanding=True)), t.c.window_start == bindparam("start")
)


def misses_in(conn: Connection, *, subjects: list[str], start: datetime) -> dict[str, int]:
    """The misses counted for each of ``subjects`` in the window starting at ``start``."""
    return {row[0]: row[1] for row in conn.execute(_MISSES, {"subjects": subjects, "start": start})}


def add_misses(conn: Connection, *, subject: str, misses: int, start: datetime) -> int:
    """Add ``misses`` to ``subject``'s count in the window starting at ``start`` (a new window
    drops the subject's older ones); the window's total after the addition."""
    changed = conn.execute(
        update(t)
        .where(t.c.subject == subject, t.c.window_start == start)
        .values(misses=t.c.misses + misses)
    ).rowcount
    if not changed:
        # A new window: the subject's older windows are done with.
        conn.execute(delete(t).where(t.c.subject == subject, t.c.window_start < start))
        conn.execute(insert(t), {"subject": subject, "window_start": start, "misses": misses})
    total: int = conn.execute(
        select(t.c.misses).where(t.c.subject == subject, t.c.window_start == start)
    ).scalar_one()
    return total
