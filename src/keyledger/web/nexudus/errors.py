"""Nexudus envelopes: ``{"Status", "Message", "Value", "WasSuccessful", "Errors": [...]}``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError

from keyledger.domain.callers.permissions import MissingPermission
from keyledger.domain.nas.models import NetworkOverlap
from keyledger.kit.clock import format_utc
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
from keyledger.web.routing import (
    BodyReadTimeout,
    BodyTooLarge,
    DialectRoute,
    MalformedJson,
    json_response,
    log_unexpected,
)

WWW_AUTHENTICATE = {"WWW-Authenticate": 'Basic realm="keyledger"'}

#: Domain subjects as Nexudus property names.
PROPERTY_OF_SUBJECT = {
    "access_code": "AccessCode",
    "minutes_included": "MinutesIncluded",
    "user_limit": "UserLimit",
    "validity": "ValidTo",
    "business_id": "BusinessId",
    "minutes": "Minutes",
    "count": "Count",
    "credential_id": "Id",
}


def problem(property_name: str, message: str, attempted: Any = None) -> dict[str, Any]:
    return {"AttemptedValue": attempted, "Message": message, "PropertyName": property_name}


class NexudusError(Exception):
    """An error decided by the adapter, with its status and ``Errors`` entries."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []
        self.headers = headers


def invalid(*problems: dict[str, Any]) -> NexudusError:
    message = "; ".join(f"{p['PropertyName']}: {p['Message']}" for p in problems)
    return NexudusError(400, message, list(problems))


def failure_body(status: int, message: str, errors: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "Status": status,
        "Message": message,
        "Value": None,
        "WasSuccessful": False,
        "Errors": errors,
    }


def _scalar(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else None


def _reason(error: Any) -> str:
    kind = error["type"]
    if kind == "missing" or error.get("input") is None:
        return "may not be null or empty"
    if kind in {"int_parsing", "int_type", "int_from_float"}:
        return "is not a valid integer"
    if kind in {"string_too_short"}:
        return "may not be null or empty"
    if kind == "string_too_long":
        return f"must have at most {error['ctx']['max_length']} characters"
    if kind == "string_type":
        return "must be a string"
    if kind == "value_error":
        return str(error["ctx"]["error"])
    if kind in {"greater_than_equal", "less_than_equal"}:
        return str(error["msg"]).lower()
    return str(error["msg"]).rstrip(".").lower()


def from_validation_error(error: ValidationError) -> NexudusError:
    problems = []
    for item in error.errors(include_url=False):
        location = [str(part) for part in item["loc"]]
        name = ".".join(location) or "Body"
        attempted = None if item["type"] == "missing" else _scalar(item.get("input"))
        problems.append(problem(name, _reason(item), attempted))
    return invalid(*problems)


UNEXPECTED = "An unexpected error occurred; it has been logged."


def _status(status: int, headers: dict[str, str] | None = None) -> Callable[[Any], NexudusError]:
    """The status, with the error's own message."""
    return lambda error: NexudusError(status, error.message, headers=headers)


def _not_found(error: DomainError) -> NexudusError:
    """404 "Record not found", naming the id that was not found: unknown records and records of
    another business answer alike."""
    if isinstance(error, CredentialNotFound):
        shown = error.missing[0] if len(error.missing) == 1 else error.missing
        return NexudusError(404, "Record not found", [problem("Id", "was not found", shown)])
    return NexudusError(404, "Record not found", [problem("Id", "was not found", error.value)])


def _invalid(error: DomainError) -> NexudusError:
    """400 with one ``Errors`` entry naming the subject as a Nexudus property."""
    name = PROPERTY_OF_SUBJECT.get(error.subject or "", error.subject or "Body")
    attempted = error.value
    if isinstance(attempted, datetime):
        attempted = format_utc(attempted)
    return invalid(problem(name, error.message, _scalar(attempted)))


def _throttled(error: TooManyFailures | GuessingThrottled) -> NexudusError:
    return NexudusError(409, error.message, headers={"Retry-After": str(error.retry_after)})


def _deadline(error: DomainError) -> NexudusError:
    return NexudusError(
        408, "The request took longer than the processing time limit; nothing was kept."
    )


def _unexpected(error: DomainError) -> NexudusError:
    return NexudusError(500, UNEXPECTED)


#: What each domain error answers in Nexudus, looked up along the error's class hierarchy. Every
#: ``DomainError`` class has its own entry (tests/dialects/test_error_tables.py).
ERRORS: dict[type[DomainError], Callable[[Any], NexudusError]] = {
    DomainError: _unexpected,
    Unauthenticated: _status(401, WWW_AUTHENTICATE),
    InvalidInput: _invalid,
    CredentialNotFound: _not_found,
    ResourceNotFound: _not_found,
    SessionNotFound: _not_found,
    Forbidden: _status(403),
    MissingPermission: _status(403),
    OutOfScope: _invalid,
    RuleViolation: _invalid,
    Conflict: _invalid,
    NetworkOverlap: _invalid,
    DeadlineExceeded: _deadline,
    BodyReadTimeout: _status(408),
    TooManyFailures: _throttled,
    PasswordChecksBusy: _throttled,
    GuessingThrottled: _throttled,
    StoreUnavailable: _status(503, {"Retry-After": "1"}),
    WriteConflict: _status(503, {"Retry-After": "1"}),
    KeysMissing: _unexpected,
}


def status_of(error: Exception) -> NexudusError:
    if isinstance(error, NexudusError):
        return error
    if isinstance(error, ValidationError):
        return from_validation_error(error)
    if isinstance(error, BodyTooLarge):
        return NexudusError(413, str(error))
    if isinstance(error, MalformedJson):
        return invalid(problem("Body", error.reason))
    answer = lookup(ERRORS, error) if isinstance(error, DomainError) else None
    if answer is None:
        return NexudusError(500, UNEXPECTED)
    return answer(error)


class NexudusRoute(DialectRoute):
    def render_error(self, request: Request, error: Exception) -> Response:
        mapped = status_of(error)
        if mapped.status == 500:
            log_unexpected(request, error)
        return json_response(
            failure_body(mapped.status, mapped.message, mapped.errors),
            status_code=mapped.status,
            headers=mapped.headers,
        )


class TokenRequestError(Exception):
    """A malformed ``POST /api/token`` request (RFC 6749 ``invalid_request``)."""


#: ``POST /api/token`` answers in RFC 6749's shape: ``{"error", "error_description"}``. The
#: status, message and headers are the Nexudus answer's, the ``error`` code comes from here: by
#: the error's class for a domain error (looked up along its class hierarchy, an entry for every
#: class), by status for the adapter's own errors. A refused grant (401 in the rest of the
#: dialect) is 400 ``invalid_grant``, as RFC 6749 says.
OAUTH_ERRORS: dict[type[DomainError], tuple[str, int | None]] = {
    DomainError: ("server_error", None),
    Unauthenticated: ("invalid_grant", 400),
    InvalidInput: ("invalid_request", None),
    CredentialNotFound: ("invalid_request", None),
    ResourceNotFound: ("invalid_request", None),
    SessionNotFound: ("invalid_request", None),
    Forbidden: ("unauthorized_client", None),
    MissingPermission: ("unauthorized_client", None),
    OutOfScope: ("invalid_request", None),
    RuleViolation: ("invalid_request", None),
    Conflict: ("invalid_request", None),
    NetworkOverlap: ("invalid_request", None),
    DeadlineExceeded: ("temporarily_unavailable", None),
    BodyReadTimeout: ("temporarily_unavailable", None),
    TooManyFailures: ("too_many_attempts", None),
    PasswordChecksBusy: ("too_many_attempts", None),
    GuessingThrottled: ("too_many_attempts", None),
    StoreUnavailable: ("temporarily_unavailable", None),
    WriteConflict: ("temporarily_unavailable", None),
    KeysMissing: ("server_error", None),
}

#: The adapter's own errors (not domain errors), by status.
_OAUTH_ERROR_OF_STATUS = {
    400: "invalid_request",
    408: "temporarily_unavailable",
    409: "too_many_attempts",
    413: "invalid_request",
    415: "invalid_request",
    503: "temporarily_unavailable",
}


class TokenRoute(DialectRoute):
    """``POST /api/token`` under the same machinery as the other Nexudus routes (deadline, body
    limit, every fault caught), answering in the OAuth error shape."""

    def render_error(self, request: Request, error: Exception) -> Response:
        if isinstance(error, TokenRequestError):
            status, message, headers = 400, str(error), None
        else:
            mapped = status_of(error)
            status, message, headers = mapped.status, mapped.message, mapped.headers
        if status == 500:
            log_unexpected(request, error)
        found = lookup(OAUTH_ERRORS, error) if isinstance(error, DomainError) else None
        if found is None:
            code = _OAUTH_ERROR_OF_STATUS.get(status, "server_error")
        else:
            code, override = found
            if override is not None:
                status, headers = override, None
        return json_response(
            {"error": code, "error_description": message}, status_code=status, headers=headers
        )
