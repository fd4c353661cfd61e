"""Mews error responses: ``{"Message", "RequestId", "Details": null}`` with the status Mews uses."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError

from keyledger.domain.callers.permissions import MissingPermission
from keyledger.domain.nas.models import NetworkOverlap
from keyledger.kit.errors import (
    Conflict,
    CredentialNotFound,
    DeadlineExceeded,
    DomainError,
    Forbidden,
    GuessingThrottled,
    InvalidInput,
    KeysMissing,
    OutOfScope,
    PasswordChecksBusy,
    ResourceNotFound,
    RuleViolation,
    SessionNotFound,
    StoreUnavailable,
    TooManyFailures,
    Unauthenticated,
    WriteConflict,
    lookup,
)
from keyledger.web.middleware import request_id_of
from keyledger.web.routing import (
    BodyReadTimeout,
    BodyTooLarge,
    DialectRoute,
    MalformedJson,
    UnsupportedContentType,
    json_response,
    log_unexpected,
)


class MewsError(Exception):
    """An error decided by the adapter itself, with its final status and message."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def invalid(property_name: str, reason: str) -> MewsError:
    return MewsError(400, f"Invalid {property_name}: {reason}")


# Domain subjects, named as the JSON property of each operation.
_PROPERTY_OF_SUBJECT: dict[str, dict[str, str]] = {
    "get_all": {"cursor": "Cursor", "enterprise": "EnterpriseIds"},
    "add": {"enterprise": "EnterpriseId"},
    "update": {"credential_id": "ResourceAccessTokenId", "enterprise": "EnterpriseId"},
    "delete": {"credential_id": "Ids", "enterprise": "Ids"},
}


def _path(location: Sequence[int | str]) -> str:
    text = ""
    for part in location:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _property_named(location: Sequence[int | str]) -> str:
    """The JSON property an error is about; ``{"Value": …}`` wrappers name their owner."""
    names = [part for part in location if isinstance(part, str)]
    if not names:
        return "request"
    if len(location) >= 2 and location[-1] == "Value" and isinstance(location[-2], str):
        return str(location[-2])
    return names[-1]


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return "is required"
    if kind in {"uuid_parsing", "uuid_type", "uuid_version"}:
        return "must be a uuid"
    if kind == "too_long":
        return f"has more than {error['ctx']['max_length']} items"
    if kind == "too_short":
        return f"needs at least {error['ctx']['min_length']} item(s)"
    if kind == "string_too_short":
        return "must not be empty"
    if kind == "string_too_long":
        return f"has more than {error['ctx']['max_length']} characters"
    if kind == "value_error":
        return f"is invalid: {error['ctx']['error']}"
    return str(error["msg"]).rstrip(".").lower()


def from_validation_error(error: ValidationError) -> MewsError:
    first = error.errors(include_url=False)[0]
    location = tuple(first["loc"])
    name = _property_named(location)
    return invalid(name, f"{_path(location) or name} {_reason(first)}.")


#: (status, message, headers): what a Mews error answers.
Answered = tuple[int, str, dict[str, str] | None]

UNEXPECTED = "An unexpected error occurred; it has been logged."


def _status(status: int) -> Callable[[DomainError, str], Answered]:
    """The status, with the error's own message."""
    return lambda error, operation: (status, error.message, None)


def _invalid(error: DomainError, operation: str) -> Answered:
    """400 ``Invalid <Property>``, the subject named as the operation's JSON property. Unknown
    ids (of credentials, resources, sessions) answer like this too: the contract has no 404."""
    subject = error.subject or "request"
    name = _PROPERTY_OF_SUBJECT.get(operation, {}).get(subject, subject)
    return 400, f"Invalid {name}: {error.message}", None


def _throttled(error: TooManyFailures | GuessingThrottled, operation: str) -> Answered:
    return 429, error.message, {"Retry-After": str(error.retry_after)}


def _unavailable(error: DomainError, operation: str) -> Answered:
    return 500, error.message, {"Retry-After": "1"}  # Mews documents 500 for faults


def _deadline(error: DomainError, operation: str) -> Answered:
    return (
        408,
        (
            "The request took longer than the processing time limit and was cancelled; "
            "nothing of it was kept. Send smaller batches."
        ),
        None,
    )


def _unexpected(error: DomainError, operation: str) -> Answered:
    return 500, UNEXPECTED, None


#: What each domain error answers in Mews, looked up along the error's class hierarchy. Every
#: ``DomainError`` class has its own entry (tests/dialects/test_error_tables.py).
ERRORS: dict[type[DomainError], Callable[[Any, str], Answered]] = {
    DomainError: _unexpected,
    Unauthenticated: _status(401),
    InvalidInput: _invalid,
    CredentialNotFound: _invalid,
    ResourceNotFound: _invalid,
    SessionNotFound: _invalid,
    Forbidden: _status(403),
    MissingPermission: _status(403),
    OutOfScope: _status(403),
    RuleViolation: _status(403),
    Conflict: _status(403),
    NetworkOverlap: _status(403),
    DeadlineExceeded: _deadline,
    BodyReadTimeout: _status(408),
    TooManyFailures: _throttled,
    PasswordChecksBusy: _throttled,
    GuessingThrottled: _throttled,
    StoreUnavailable: _unavailable,
    WriteConflict: _unavailable,
    KeysMissing: _unexpected,
}


def status_and_message(operation: str, error: Exception) -> Answered:
    if isinstance(error, MewsError):
        return error.status, error.message, error.headers
    if isinstance(error, BodyTooLarge):
        return 413, str(error), None
    if isinstance(error, MalformedJson):
        if error.reason == MalformedJson().reason:
            return 400, "Invalid JSON: the body is not a valid JSON object.", None
        return 400, f"Invalid JSON: the body {error.reason}.", None
    if isinstance(error, UnsupportedContentType):
        return 400, f"Invalid request: {error}", None
    if isinstance(error, ValidationError):
        mapped = from_validation_error(error)
        return mapped.status, mapped.message, None
    answer = lookup(ERRORS, error) if isinstance(error, DomainError) else None
    if answer is None:
        return 500, UNEXPECTED, None
    return answer(error, operation)


def error_response(
    request: Request, status: int, message: str, headers: dict[str, str] | None = None
) -> Response:
    body = {"Message": message, "RequestId": request_id_of(request.scope), "Details": None}
    return json_response(body, status_code=status, headers=headers)


class MewsRoute(DialectRoute):
    def render_error(self, request: Request, error: Exception) -> Response:
        status, message, headers = status_and_message(self.name, error)
        if status == 500 and not isinstance(error, StoreUnavailable):  # logged by the store
            log_unexpected(request, error)
        return error_response(request, status, message, headers)
