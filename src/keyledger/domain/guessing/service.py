"""Guessing budgets (docs/access.md, "Guessing budgets").

A refused code — a door check that is not granted (unknown, at a door it cannot open, expired,
not yet valid, deleted) or a hotspot start refused for its code — is a miss. Misses are counted
per access token across every reader and property, and per property across every token, in fixed
windows (``guess_counts``: one row per subject and window, an index lookup). Once a subject has
used its budget, every check and start it covers answers ``Throttled`` until its window ends;
the miss that uses it up writes one ``guessing.throttled`` event (once per window and subject).

Counting is serialised like the reader lock-out (docs/architecture.md, "Concurrent writes"): a
write that counts takes the subjects' advisory locks (the group writer takes them first, in key
order), so exactly one miss crosses the budget. The counts live in the database, so they hold
across workers and instances with or without Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, bindparam, delete, insert, select, update

from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.store.locks import advisory_key
from keyledger.store.schema import guess_counts as t


@dataclass(frozen=True, slots=True)
class GuessBudget:
    """``per_caller`` misses of one access token and ``per_property`` misses at one property
    per ``window_seconds`` (defaults: docs/access.md)."""

    per_caller: int = 300
    per_property: int = 1500
    window_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class Guesser:
    """Who is guessing, and where: the access token (``caller``, e.g. ``token:12``) and the
    property of the reader or business."""

    caller: str
    property_id: int

    @property
    def subjects(self) -> tuple[str, str]:
        return (_caller_subject(self.caller), f"property:{self.property_id}")


def _caller_subject(caller: str) -> str:
    """The row (and lock) of ``caller``'s own budget."""
    return f"caller:{caller}"


def window_of(now: datetime, budget: GuessBudget) -> tuple[datetime, datetime]:
    """The fixed window ``now`` falls in: [start, end)."""
    seconds = int(now.timestamp()) // budget.window_seconds * budget.window_seconds
    start = datetime.fromtimestamp(seconds, UTC)
    return start, start + timedelta(seconds=budget.window_seconds)


def lock_keys(guesser: Guesser) -> list[int]:
    """The advisory locks a write counting a miss of ``guesser`` takes."""
    return [advisory_key("guess", subject) for subject in guesser.subjects]


_MISSES = select(t.c.subject, t.c.misses).where(
    t.c.subject.in_(bindparam("subjects", expanding=True)), t.c.window_start == bindparam("start")
)


def throttled_until(
    conn: Connection, *, guesser: Guesser, budget: GuessBudget, now: datetime
) -> datetime | None:
    """When ``guesser``'s window ends, if a budget covering it is used up; None otherwise."""
    start, end = window_of(now, budget)
    caller, prop = guesser.subjects
    counted = {
        row[0]: row[1]
        for row in conn.execute(_MISSES, {"subjects": [caller, prop], "start": start})
    }
    if counted.get(caller, 0) >= budget.per_caller:
        return end
    if counted.get(prop, 0) >= budget.per_property:
        return end
    return None


def token_caller(connection_id: int) -> str:
    """The guessing budget's caller for an access token (its connection), in every dialect."""
    return f"token:{connection_id}"


def caller_lock_key(caller: str) -> int:
    """The advisory lock of ``caller``'s own budget (one of ``lock_keys``)."""
    return advisory_key("guess", _caller_subject(caller))


def caller_throttled_until(
    conn: Connection, *, caller: str, budget: GuessBudget, now: datetime
) -> datetime | None:
    """When the window ends, if ``caller``'s own budget is used up; None otherwise."""
    start, end = window_of(now, budget)
    counted = conn.execute(_MISSES, {"subjects": [_caller_subject(caller)], "start": start}).all()
    return end if counted and counted[0][1] >= budget.per_caller else None


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
    changed = conn.execute(
        update(t)
        .where(t.c.subject == subject, t.c.window_start == start)
        .values(misses=t.c.misses + misses)
    ).rowcount
    if not changed:
        # A new window: the subject's older windows are done with.
        conn.execute(delete(t).where(t.c.subject == subject, t.c.window_start < start))
        conn.execute(insert(t), {"subject": subject, "window_start": start, "misses": misses})
    total = conn.execute(
        select(t.c.misses).where(t.c.subject == subject, t.c.window_start == start)
    ).scalar_one()
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
    caller, prop = guesser.subjects
    for subject, limit, kind in (
        (caller, budget.per_caller, "Caller"),
        (prop, budget.per_property, "Property"),
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
        subject=_caller_subject(caller),
        misses=misses,
        limit=budget.per_caller,
        kind="Caller",
        property_id=property_id,
        budget=budget,
        actor=actor,
        now=now,
    )
