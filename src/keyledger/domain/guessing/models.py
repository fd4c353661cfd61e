"""Guessing budgets: who guesses where, how many misses a window allows, and which window a
moment falls in (docs/access.md, "Guessing budgets")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True, slots=True)
class GuessBudget:
    """``per_caller`` misses of one access token and ``per_property`` misses at one property
    per ``window_seconds`` (defaults: docs/access.md)."""

    per_caller: int = 300
    per_property: int = 1500
    window_seconds: int = 3600


@dataclass(frozen=True, slots=True)
class Pool:
    """A shared budget other than the property's: its subject (the row and lock of its count),
    what events call it and what they call the callers in it. A NAS's devices share one
    (``nas:<id>``): Wi-Fi guesses count per device and per NAS, never against the property's
    door budget (docs/radius.md, "Guessing")."""

    subject: str
    label: str
    caller_label: str


@dataclass(frozen=True, slots=True)
class Guesser:
    """Who is guessing, and where: the access token (``caller``, e.g. ``token:12``) and the
    property of the reader or business. The caller's misses count against its own budget
    (``per_caller``) and a shared one (``per_property``): the property's, or ``pool``'s."""

    caller: str
    property_id: int
    pool: Pool | None = None

    @property
    def subjects(self) -> tuple[str, str]:
        shared = f"property:{self.property_id}" if self.pool is None else self.pool.subject
        return (caller_subject(self.caller), shared)

    @property
    def labels(self) -> tuple[str, str]:
        """What ``guessing.throttled`` events call the two budgets (``Budget``)."""
        if self.pool is None:
            return ("Caller", "Property")
        return (self.pool.caller_label, self.pool.label)


def caller_subject(caller: str) -> str:
    """The row (and lock) of ``caller``'s own budget."""
    return f"caller:{caller}"


def window_of(now: datetime, budget: GuessBudget) -> tuple[datetime, datetime]:
    """The fixed window ``now`` falls in: [start, end)."""
    seconds = int(now.timestamp()) // budget.window_seconds * budget.window_seconds
    start = datetime.fromtimestamp(seconds, UTC)
    return start, start + timedelta(seconds=budget.window_seconds)


def token_caller(connection_id: int) -> str:
    """The guessing budget's caller for an access token (its connection), in every dialect."""
    return f"token:{connection_id}"
