"""Errors of keyledger's own API: ``{"Status", "Error", "Message", "RequestId"}``."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
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


def _location(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    path = ".".join(str(part) for part in first["loc"]) or "body"
    return f"{path}: {str(first['msg']).rstrip('.').lower()}."


UNEXPECTED = (500, "Unexpected", "An unexpected error occurred; it has been logged.")


def _wait(error: DomainError) -> dict[str, str]:
    """``Retry-After``: the window the throttled caller waits out."""
    if isinstance(error, TooManyFailures | GuessingThrottled):
        return {"Retry-After": str(error.retry_after)}
    return {}


def _soon(_: DomainError) -> dict[str, str]:
    """``Retry-After``: an unavailable store is worth a retry a second later."""
    return {"Retry-After": "1"}


#: (status, ``Error`` name[, headers]) of each domain error, looked up along the error's class
#: hierarchy; the message is the error's own (or ``UNEXPECTED``'s for a 500). Every
#: ``DomainError`` class has its own entry (tests/dialects/test_error_tables.py).
ERRORS: dict[
    type[DomainError],
    tuple[int, str] | tuple[int, str, Callable[[DomainError], dict[str, str]]],
] = {
    DomainError: (500, "Unexpected"),
    Unauthenticated: (401, "Unauthenticated"),
    InvalidInput: (400, "InvalidInput"),
    CredentialNotFound: (404, "NotFound"),
    ResourceNotFound: (404, "NotFound"),
    SessionNotFound: (404, "NotFound"),
    Forbidden: (403, "Forbidden"),
    MissingPermission: (403, "MissingScope"),
    OutOfScope: (403, "OutOfScope"),
    RuleViolation: (409, "RuleViolation"),
    Conflict: (409, "RuleViolation"),
    NetworkOverlap: (409, "RuleViolation"),
    DeadlineExceeded: (408, "Timeout"),
    BodyReadTimeout: (408, "Timeout"),
    TooManyFailures: (429, "TooManyFailures", _wait),
    PasswordChecksBusy: (429, "TooManyFailures", _wait),
    GuessingThrottled: (429, "Throttled", _wait),
    StoreUnavailable: (503, "Unavailable", _soon),
    WriteConflict: (503, "Unavailable", _soon),
    KeysMissing: (500, "Unexpected"),
}


def classify(error: Exception) -> tuple[int, str, str]:
    if isinstance(error, ValidationError):
        return 400, "InvalidInput", _location(error)
    if isinstance(error, RequestValidationError):
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:]) or "request"
        return 400, "InvalidInput", f"{where}: {str(first['msg']).rstrip('.').lower()}."
    if isinstance(error, MalformedJson):
        return 400, "InvalidInput", str(error)
    if isinstance(error, UnsupportedContentType):
        return 415, "UnsupportedMediaType", str(error)
    if isinstance(error, BodyTooLarge):
        return 413, "TooLarge", str(error)
    found = lookup(ERRORS, error) if isinstance(error, DomainError) else None
    if found is None or found[0] == 500 or not isinstance(error, DomainError):
        return UNEXPECTED
    return found[0], found[1], error.message


def headers_of(error: Exception, status: int) -> dict[str, str] | None:
    """The headers an answer carries: the entry's (``Retry-After``), else ``WWW-Authenticate``
    on a 401."""
    found = lookup(ERRORS, error) if isinstance(error, DomainError) else None
    if found is not None and len(found) == 3 and isinstance(error, DomainError):
        return found[2](error)
    return {"WWW-Authenticate": "Bearer"} if status == 401 else None


class ApiRoute(DialectRoute):
    def render_error(self, request: Request, error: Exception) -> Response:
        status, name, message = classify(error)
        if status == 500:
            log_unexpected(request, error)
        headers = headers_of(error, status)
        body = {
            "Status": status,
            "Error": name,
            "Message": message,
            "RequestId": request_id_of(request.scope),
        }
        return json_response(body, status_code=status, headers=headers)
