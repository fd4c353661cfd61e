"""Errors of keyledger's own API: ``{"Status", "Error", "Message", "RequestId"}``."""

from __future__ import annotations

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from keyledger.domain.callers.permissions import MissingPermission
from keyledger.kit.errors import (
    Conflict,
    CredentialNotFound,
    DeadlineExceeded,
    Forbidden,
    InvalidInput,
    OutOfScope,
    ResourceNotFound,
    RuleViolation,
    SessionNotFound,
    StoreUnavailable,
    TooManyFailures,
    Unauthenticated,
)
from keyledger.web.middleware import request_id_of
from keyledger.web.routing import (
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
    if isinstance(error, Unauthenticated):
        return 401, "Unauthenticated", error.message
    if isinstance(error, TooManyFailures):
        return 429, "TooManyFailures", error.message
    if isinstance(error, StoreUnavailable):
        return 503, "Unavailable", error.message
    if isinstance(error, MissingPermission):
        return 403, "MissingScope", error.message
    if isinstance(error, Forbidden):
        return 403, "Forbidden", error.message
    if isinstance(error, ResourceNotFound | CredentialNotFound | SessionNotFound):
        return 404, "NotFound", error.message
    if isinstance(error, OutOfScope):
        return 403, "OutOfScope", error.message
    if isinstance(error, RuleViolation | Conflict):
        return 409, "RuleViolation", error.message
    if isinstance(error, InvalidInput):
        return 400, "InvalidInput", error.message
    if isinstance(error, DeadlineExceeded):
        return 408, "Timeout", error.message
    return 500, "Unexpected", "An unexpected error occurred; it has been logged."


class ApiRoute(DialectRoute):
    def render_error(self, request: Request, error: Exception) -> Response:
        status, name, message = classify(error)
        if status == 500:
            log_unexpected(request, error)
        headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
        if isinstance(error, TooManyFailures):
            headers = {"Retry-After": str(error.retry_after)}
        if isinstance(error, StoreUnavailable):
            headers = {"Retry-After": "1"}
        body = {
            "Status": status,
            "Error": name,
            "Message": message,
            "RequestId": request_id_of(request.scope),
        }
        return json_response(body, status_code=status, headers=headers)
