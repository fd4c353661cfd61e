"""The miss counts of guessing budgets: one ``guess_counts`` row per subject and window."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from keyledger.store.direct import Direct, DirectIn
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
# A group of hotspot starts reads all its guessers' subjects at once.
_MISSES_OF_MANY = DirectIn(
    t.c.subject,
    lambda subject_in: select(t.c.subject, t.c.misses).where(
        subject_in, t.c.window_start == bindparam("start")
    ),
    prefix="subject",
)


def _read_in_transaction(conn: Connection) -> dict[tuple[str, datetime], int]:
    """The counts this transaction has read or written, by (subject, window start).

    Reading a count again in the same write transaction needs no statement: under the subjects'
    advisory locks (PostgreSQL) or the one write lock (SQLite), held to the transaction's end,
    only this transaction changes them, through ``add_misses``, which updates this copy. A
    hotspot start reads them without the locks on PostgreSQL: a count only grows within its
    window, so a used-up budget read so is used up, and an earlier reading is one the start may
    act on as if it came before the misses in flight; a start that counts a miss takes the locks
    and reads again with ``fresh=True``. A group commit's starts from one NAS or token thus read
    its budgets once. Kept in the connection's ``info`` under the transaction it belongs to, so
    it never outlives it."""
    transaction = conn.get_transaction()
    held = conn.info.get("guess_counts")
    if held is None or held[0] is not transaction:
        held = (transaction, {})
        conn.info["guess_counts"] = held
    counts: dict[tuple[str, datetime], int] = held[1]
    return counts


def misses_in(
    conn: Connection, *, subjects: list[str], start: datetime, fresh: bool = False
) -> dict[str, int]:
    """The misses counted for each of ``subjects`` in the window starting at ``start``;
    ``fresh``: read them again on PostgreSQL even if this transaction has (a caller that has
    just taken their locks after reading them without; SQLite's write lock was held all along)."""
    known = _read_in_transaction(conn) if conn.in_transaction() else None
    if fresh and known is not None and conn.dialect.name == "postgresql":
        for subject in subjects:
            known.pop((subject, start), None)
    # Only the subjects this transaction has not read yet (a NAS's devices share its pool).
    asked = subjects if known is None else [s for s in subjects if (s, start) not in known]
    found: dict[str, int] = {}
    if 1 <= len(asked) <= 2:
        parameters = {"first": asked[0], "second": asked[-1], "start": start}
        found = {row[0]: row[1] for row in _MISSES.all(conn, parameters)}
    elif asked:
        rows = _MISSES_OF_MANY.all(conn, {"start": start}, asked)
        found = {row[0]: row[1] for row in rows}
    if known is None:
        return found
    known.update({(subject, start): found.get(subject, 0) for subject in asked})
    return {subject: known[subject, start] for subject in subjects if known[subject, start]}


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


_FORGET = delete(t).where(t.c.window_start < bindparam("start"))


def delete_before(conn: Connection, *, start: datetime) -> int:
    """Delete every subject's counts of windows that began before ``start``; how many rows.

    On PostgreSQL the delete waits at most 200 ms for a row another transaction holds (a subject
    opening its new window deletes its old row too): it gives up rather than wait, or deadlock,
    behind a group commit, and is tried again later. SQLite's one writer has nothing to wait for."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL lock_timeout = '200ms'")
    return int(conn.execute(_FORGET, {"start": start}).rowcount)
