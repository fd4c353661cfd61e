"""Guessing budgets (docs/access.md, "Guessing budgets").

A refused code — a door check that is not granted (unknown, at a door it cannot open, expired,
not yet valid, deleted) or a hotspot start refused for its code — is a miss. Misses are counted
per access token across every reader and property, and per property across every token, in fixed
windows (``guess_counts``: one row per subject and window, an index lookup). Once a subject has
used its budget, every check and start it covers answers ``Throttled`` until its window ends;
the miss that uses it up writes one ``guessing.throttled`` event (once per window and subject).

Counting is serialised like the reader lock-out (docs/architecture.md, "Concurrent writes"): a
write that counts takes the subjects' advisory locks (the group writer takes them first, in key
order; a hotspot start, which knows only from the voucher row whether it misses, takes them then
with ``locks.hold_now``), so exactly one miss crosses the budget. The counts live in the
database, so they hold across workers and instances with or without Redis.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection

from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing import repository
from keyledger.domain.guessing.models import GuessBudget, Guesser, caller_subject, window_of
from keyledger.store.locks import advisory_key


def lock_keys(guesser: Guesser) -> list[int]:
    """The advisory locks a write counting a miss of ``guesser`` takes."""
    return [advisory_key("guess", subject) for subject in guesser.subjects]


def throttled_until(
    conn: Connection,
    *,
    guesser: Guesser,
    budget: GuessBudget,
    now: datetime,
    fresh: bool = False,
) -> datetime | None:
    """When ``guesser``'s window ends, if a budget covering it is used up; None otherwise
    (``fresh``: see ``repository.misses_in``)."""
    start, end = window_of(now, budget)
    caller, shared = guesser.subjects
    counted = repository.misses_in(conn, subjects=[caller, shared], start=start, fresh=fresh)
    if counted.get(caller, 0) >= budget.per_caller:
        return end
    if counted.get(shared, 0) >= budget.per_property:
        return end
    return None


def read_budgets(
    conn: Connection, guessers: Iterable[Guesser], *, budget: GuessBudget, now: datetime
) -> None:
    """Read the counts of all ``guessers``' budgets in one statement, so that
    ``throttled_until`` for any of them in this transaction reads none (a group of starts)."""
    start, _ = window_of(now, budget)
    subjects = list(dict.fromkeys(subject for g in guessers for subject in g.subjects))
    if subjects:
        repository.misses_in(conn, subjects=subjects, start=start)


def caller_lock_key(caller: str) -> int:
    """The advisory lock of ``caller``'s own budget (one of ``lock_keys``)."""
    return advisory_key("guess", caller_subject(caller))


def caller_throttled_until(
    conn: Connection, *, caller: str, budget: GuessBudget, now: datetime
) -> datetime | None:
    """When the window ends, if ``caller``'s own budget is used up; None otherwise."""
    start, end = window_of(now, budget)
    subject = caller_subject(caller)
    counted = repository.misses_in(conn, subjects=[subject], start=start)
    return end if counted.get(subject, 0) >= budget.per_caller else None


def _add(
    conn: Connection,
    *,
    subject: str,
    misses: int,
    limit: int,
    kind: str,
    property_id: int,
    budget: GuessBudget,
    actor: Actor,
    now: datetime,
) -> None:
    start, end = window_of(now, budget)
    total = repository.add_misses(conn, subject=subject, misses=misses, start=start)
    if total - misses < limit <= total:  # these misses used the budget up
        events.append(
            conn,
            records.guessing_throttled(
                property_id=property_id, budget=kind, misses=total, until=end
            ),
            actor=actor,
            now=now,
        )


def count_miss(
    conn: Connection, *, guesser: Guesser, budget: GuessBudget, actor: Actor, now: datetime
) -> None:
    """Count one miss against both of ``guesser``'s budgets (the caller holds ``lock_keys``);
    the miss that uses a budget up writes its ``guessing.throttled`` event."""
    caller, shared = guesser.subjects
    caller_label, shared_label = guesser.labels
    for subject, limit, kind in (
        (caller, budget.per_caller, caller_label),
        (shared, budget.per_property, shared_label),
    ):
        _add(
            conn,
            subject=subject,
            misses=1,
            limit=limit,
            kind=kind,
            property_id=guesser.property_id,
            budget=budget,
            actor=actor,
            now=now,
        )


def count_caller_misses(
    conn: Connection,
    *,
    caller: str,
    property_id: int,
    misses: int,
    budget: GuessBudget,
    actor: Actor,
    now: datetime,
) -> None:
    """Count ``misses`` against ``caller``'s own budget only (the caller holds
    ``caller_lock_key``): the values of a write refused by the collision rule
    (docs/access.md, "The collision rule"). Writes that use the budget up write its event,
    filed under ``property_id``."""
    _add(
        conn,
        subject=caller_subject(caller),
        misses=misses,
        limit=budget.per_caller,
        kind="Caller",
        property_id=property_id,
        budget=budget,
        actor=actor,
        now=now,
    )


def forget_past_windows(conn: Connection, *, budget: GuessBudget, now: datetime) -> int:
    """Delete the counts of windows before ``now``'s (they decide nothing any more); how many.

    A subject's own older windows go when it opens a new one (``repository.add_misses``), but a
    subject that never misses again would keep its last row for ever: RADIUS devices are such
    subjects, one per ``Calling-Station-Id`` that ever missed, which a guesser changing its MAC
    address multiplies. The RADIUS server runs this now and then (``nas.service``), in a
    transaction of its own that holds no other lock."""
    start, _ = window_of(now, budget)
    return repository.delete_before(conn, start=start)
