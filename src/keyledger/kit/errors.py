"""Typed domain errors raised by the core; each dialect maps them to its wire shape once."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar


class DomainError(Exception):
    """Base of every error the core raises on purpose.

    ``subject`` names what was wrong in the domain's words (``credential_id``, ``cursor``,
    ``enterprise``, ``validity``...); dialects translate it to their own property names.
    ``value`` is the offending value, when showing it back to the caller is safe.
    """

    def __init__(self, message: str, *, subject: str | None = None, value: object = None) -> None:
        super().__init__(message)
        self.message = message
        self.subject = subject
        self.value = value


class Unauthenticated(DomainError):
    """Missing, unknown, revoked or disabled caller credentials."""


class InvalidInput(DomainError):
    """Malformed input the dialect could not reject on its own (unknown cursor, unknown ids)."""


class CredentialNotFound(InvalidInput):
    """Some credential ids do not exist within the caller's scope."""

    def __init__(self, missing: Sequence[object], *, subject: str = "credential_id") -> None:
        shown = ", ".join(str(item) for item in list(missing)[:5])
        more = "" if len(missing) <= 5 else f" and {len(missing) - 5} more"
        super().__init__(f"No such credential in scope: {shown}{more}.", subject=subject)
        self.missing = list(missing)


class ResourceNotFound(DomainError):
    """A resource (door, reader) that does not exist within the caller's scope."""


class SessionNotFound(DomainError):
    """A hotspot session that does not exist within the caller's scope."""


class OutOfScope(DomainError):
    """A property that the caller's credentials do not cover."""


class Forbidden(DomainError):
    """The caller is known but lacks the role the operation needs."""


class RuleViolation(DomainError):
    """A business rule refuses the change (validity order, deleted credential, collision...)."""


class DeadlineExceeded(DomainError):
    """The request ran past its processing time limit; nothing of it was kept."""


class Conflict(DomainError):
    """The change conflicts with existing records (duplicate identifiers)."""


class TooManyFailures(DomainError):
    """Too many failed authentications for this caller or from this address: wait."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            f"Too many failed authentications; retry after {retry_after} s.", subject="auth"
        )
        self.retry_after = retry_after


class GuessingThrottled(DomainError):
    """The caller's guessing budget is used up (domain/guessing/service.py): a write carrying
    values is refused without being evaluated until the window ends."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(
            "Too many values refused for this AccessToken by the collision rule (its guessing "
            f"budget is used up); retry after {retry_after} s.",
            subject="guessing",
        )
        self.retry_after = retry_after


class PasswordChecksBusy(TooManyFailures):
    """This worker's password checks are queued past their bound: answered like a throttled
    authentication (the dialect's shape, ``Retry-After``), never left waiting."""

    def __init__(self, retry_after: int = 1) -> None:
        super().__init__(retry_after)
        self.message = f"Too many password checks waiting; retry after {retry_after} s."


class StoreUnavailable(DomainError):
    """The database cannot be reached (or stays busy): nothing was changed; retry shortly."""


class WriteConflict(StoreUnavailable):
    """PostgreSQL chose this transaction as the victim of a deadlock or serialization failure:
    nothing was changed, and running it again may succeed (``Store.write_retrying``)."""


class KeysMissing(DomainError):
    """Values are sealed with keys the configuration does not hold (``keyledger rekey``)."""


Answer = TypeVar("Answer")


def lookup(table: Mapping[Any, Answer], error: BaseException) -> Answer | None:
    """The entry of ``error``'s class in a dialect's error table, else of its nearest ancestor
    (along the MRO, as Starlette looks up exception handlers); None when no ancestor has one.
    Each dialect's table has an entry for every ``DomainError`` class
    (tests/dialects/test_error_tables.py), so the fallback along the MRO only serves subclasses
    defined outside keyledger."""
    for cls in type(error).__mro__:
        found = table.get(cls)
        if found is not None:
            return found
    return None
