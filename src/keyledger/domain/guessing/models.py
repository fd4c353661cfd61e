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
class Guesser:
    """Who is guessing, and where: the access token (``caller``, e.g. ``token:12``) and the
    property of the reader or business."""

    caller: str
    property_id: int

    @property
    def subjects(self) -> tuple[str, str]:
        return (caller_subject(self.caller), f"property:{self.property_id}")


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
