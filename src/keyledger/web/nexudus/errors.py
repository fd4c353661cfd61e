"""Nexudus envelopes: ``{"Status", "Message", "Value", "WasSuccessful", "Errors": [...]}``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Request, Response
from pydantic import ValidationError

from keyledger.kit.clock import format_utc
from keyledger.kit.errors import (
    Conflict,
    CredentialNotFound,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    OutOfScope,
    RuleViolation,
    StoreUnavailable,
    TooManyFailures,
    Unauthenticated,
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


def status_of(error: Exception) -> NexudusError:
    if isinstance(error, NexudusError):
        return error
    if isinstance(error, ValidationError):
        return from_validation_error(error)
    if isinstance(error, BodyTooLarge):
        return NexudusError(413, str(error))
    if isinstance(error, BodyReadTimeout):
        return NexudusError(408, error.message)
    if isinstance(error, MalformedJson):
        return invalid(problem("Body", error.reason))
    if isinstance(error, Unauthenticated):
        return NexudusError(401, error.message, headers=WWW_AUTHENTICATE)
    if isinstance(error, StoreUnavailable):
        return NexudusError(503, error.message, headers={"Retry-After": "1"})
    if isinstance(error, TooManyFailures):
        return NexudusError(409, error.message, headers={"Retry-After": str(error.retry_after)})
    if isinstance(error, Forbidden):
        return NexudusError(403, error.message)
    if isinstance(error, CredentialNotFound):
        shown = error.missing[0] if len(error.missing) == 1 else error.missing
        return NexudusError(404, "Record not found", [problem("Id", "was not found", shown)])
    if isinstance(error, InvalidInput | Conflict | RuleViolation | OutOfScope):
        name = PROPERTY_OF_SUBJECT.get(error.subject or "", error.subject or "Body")
        attempted = error.value
        if isinstance(attempted, datetime):
            attempted = format_utc(attempted)
        return invalid(problem(name, error.message, _scalar(attempted)))
    if isinstance(error, DeadlineExceeded):
        return NexudusError(
            408, "The request took longer than the processing time limit; nothing was kept."
        )
    return NexudusError(500, "An unexpected error occurred; it has been logged.")


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


#: ``POST /api/token`` answers in RFC 6749's shape: ``{"error", "error_description"}``.
_OAUTH_ERROR = {
    400: "invalid_request",
    401: "invalid_grant",
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
        if status == 401:  # RFC 6749: a refused grant is a 400 invalid_grant
            status, headers = 400, None
        code = _OAUTH_ERROR.get(status, "server_error")
        return json_response(
            {"error": code, "error_description": message}, status_code=status, headers=headers
        )
