"""The miss counts of guessing budgets: one ``guess_counts`` row per subject and window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from keyledger.store.direct import Direct
from keyledger.store.schema import guess_counts as t

# Every hotspot start and door check reads one or two subjects: two plain parameters (a subject
# asked alone is passed twice), so the statement is complete when built, with no expanding IN
# to render per execution (issue 14's RADIUS benchmark).
_MISSES = Direct(  # on the driver's cursor, compiled once (store/direct.py)
    select(t.c.subject, t.c.misses).where(
        t.c.subject.in_([bindparam("first"), bindparam("second")]),
        t.c.window_start == bindparam("start"),
    )
)
_MISSES_OF_MANY = select(t.c.subject, t.c.misses).where(
    t.c.subject.in_(bindparam("subjects", expanding=True)), t.c.window_start == bindparam("start")
)


def _read_in_transaction(conn: Connection) -> dict[tuple[str, datetime], int]:
    """The counts this transaction has read or written, by (subject, window start).

    Reading a count again in the same write transaction needs no statement: a write that reads
    counts holds their subjects' advisory locks (PostgreSQL) or the one write lock (SQLite) to
    its end, so only this transaction changes them, through ``add_misses``, which updates this
    copy. A group commit's starts from one NAS or token thus read its budgets once. Kept in the
    connection's ``info`` under the transaction it belongs to, so it never outlives it."""
    transaction = conn.get_transaction()
    held = conn.info.get("guess_counts")
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        conn.info["guess_counts"] = held
    counts: dict[tuple[str, datetime], int] = held[1]
    return counts


def misses_in(conn: Connection, *, subjects: list[str], start: datetime) -> dict[str, int]:
    """The misses counted for each of ``subjects`` in the window starting at ``start``."""
    known = _read_in_transaction(conn) if conn.in_transaction() else None
    if known is not None and all((subject, start) in known for subject in subjects):
        return {subject: known[subject, start] for subject in subjects if known[subject, start]}
    if 1 <= len(subjects) <= 2:
        parameters = {"first": subjects[0], "second": subjects[-1], "start": start}
        found = {row[0]: row[1] for row in _MISSES.all(conn, parameters)}
    else:
        rows = conn.execute(_MISSES_OF_MANY, {"subjects": subjects, "start": start})
        found = {row[0]: row[1] for row in rows}
    if known is not None:
        known.update({(subject, start): found.get(subject, 0) for subject in subjects})
    return found


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
        if conn.in_transaction():
            known = _read_in_transaction(conn)
            for done in [key for key in known if key[0] == subject and key[1] < start]:
                del known[done]
        conn.execute(insert(t), {"subject": subject, "window_start": start, "misses": misses})
    total: int = conn.execute(
        select(t.c.misses).where(t.c.subject == subject, t.c.window_start == start)
    ).scalar_one()
    if conn.in_transaction():
        _read_in_transaction(conn)[subject, start] = total
    return total
