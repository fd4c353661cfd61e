"""Who is calling: HTTP Basic (e-mail:password) or a bearer token from ``POST /api/token``.

Nexudus' own documentation shows the header as ``Authentication: Basic …``; keyledger accepts
that spelling too when no ``Authorization`` header is sent, so the documented examples work.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import Depends, Request

from keyledger.domain.callers.models import Role, UserCaller
from keyledger.domain.callers.users import (
    authenticate_bearer,
    authenticate_password,
    remembered_password,
)
from keyledger.domain.properties.models import Scope
from keyledger.kit.errors import Unauthenticated
from keyledger.kit.inputs import refused_character
from keyledger.web.context import AppContext, ContextDep, client_address
from keyledger.web.nexudus.errors import NexudusError, invalid, problem
from keyledger.web.routing import is_json_content_type, parse_json, read_body

MAX_FORM_FIELDS = 200


def basic_parts(header: str) -> tuple[str, str] | None:
    """The e-mail and password of a Basic header; None when it is not ``base64(e-mail:password)``
    in UTF-8."""
    try:
        decoded = base64.b64decode(header.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    email, separator, password = decoded.partition(":")
    return (email, password) if separator else None


def _credentials(request: Request) -> tuple[str, str]:
    """The scheme (lower case) and value of ``Authorization`` (or Nexudus' ``Authentication``)."""
    header = request.headers.get("authorization") or request.headers.get("authentication") or ""
    scheme, _, value = header.strip().partition(" ")
    return scheme.lower(), value


async def authenticate(request: Request, context: AppContext) -> UserCaller:
    """A Basic password under the password brake, anything else as a secret (auth_throttle.py)."""
    scheme, value = _credentials(request)
    address = client_address(request)
    parts = basic_parts(value) if scheme == "basic" else None
    if parts is not None:
        email, password = parts

        async def check() -> UserCaller:
            if refused_character(email) or refused_character(password):
                # A NUL or control character is never in an e-mail or a password kept here: a
                # failed authentication (counted by the brake), never a look-up.
                raise Unauthenticated("Malformed Basic credentials.")
            return await authenticate_password(
                context.store,
                context.password_cache,
                context.password_verifier,
                email=email,
                password=password,
            )

        def remembered() -> UserCaller | None:
            return remembered_password(
                context.store, context.password_cache, email=email, password=password
            )

        return await context.auth_throttle.password(
            check, email=email, address=address, remembered=remembered
        )
    return await context.auth_throttle.secret(
        lambda: _not_a_password(scheme, value, context), address=address
    )


def _not_a_password(scheme: str, value: str, context: AppContext) -> UserCaller:
    if not scheme:
        raise Unauthenticated("Authentication required: Basic e-mail:password or a bearer token.")
    if scheme == "basic":
        raise Unauthenticated("Malformed Basic credentials.")
    if scheme == "bearer":
        if refused_character(value) is not None:
            raise Unauthenticated("Malformed bearer token.")
        return authenticate_bearer(context.store, token=value.strip())
    raise Unauthenticated("Unsupported authentication scheme.")


async def nexudus_caller(request: Request, context: ContextDep) -> UserCaller:
    caller = await authenticate(request, context)
    retry_after = await context.rate_limiter.hit(context.nexudus_limit, str(caller.user_id))
    if retry_after is not None:
        raise NexudusError(
            409,
            f"Too many requests; retry after {retry_after} s.",
            headers={"Retry-After": str(retry_after)},
        )
    return caller


CallerDep = Annotated[UserCaller, Depends(nexudus_caller)]


def requiring(role: Role) -> Callable[[UserCaller], Scope]:
    """A dependency: the businesses where the caller has ``role`` (none at all: 403). Checks of a
    role on one record (404 before 403) are ``UserCaller.require``, in the endpoint."""

    def scope_requiring(caller: CallerDep) -> Scope:
        return caller.scope_requiring(role)

    return scope_requiring


#: The caller's businesses where it may list access tokens (and their commands).
ListScope = Annotated[Scope, Depends(requiring(Role.LIST))]


async def read_fields(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object or a form-encoded body as a dict; empty form fields are null."""
    raw = await read_body(request, limit)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "application/x-www-form-urlencoded":
        try:
            pairs = parse_qsl(
                raw.decode("utf-8"),
                keep_blank_values=True,
                max_num_fields=MAX_FORM_FIELDS,
                errors="strict",
            )
        except (UnicodeDecodeError, ValueError):
            raise invalid(problem("Body", "is not a valid form-encoded UTF-8 body")) from None
        for name, value in pairs:
            reason = refused_character(name) or refused_character(value)
            if reason is not None:
                raise invalid(problem(name if not refused_character(name) else "Body", reason))
        names = [name for name, _ in pairs]
        repeated = next((name for name in names if names.count(name) > 1), None)
        if repeated is not None:
            raise invalid(problem(repeated, "is given more than once"))
        return {name: (value if value != "" else None) for name, value in pairs}
    if is_json_content_type(request):
        payload = parse_json(raw)
        if not isinstance(payload, dict):
            raise invalid(problem("Body", "must be a JSON object"))
        return payload
    raise NexudusError(415, f"Unsupported content type {content_type!r}; send JSON or a form.")
