"""What every ``/api/v1`` router shares: the caller (``Authorization: Bearer <AccessToken>``),
the JSON body reader, the documented error answers, and the settings the domain services take
(the reader policy, the guessing budget)."""

from __future__ import annotations

from typing import Annotated, TypeVar
from uuid import UUID

from fastapi import Depends, Request

from keyledger.domain.access.models import ReaderPolicy
from keyledger.domain.callers.integrations import authenticate_access_token
from keyledger.domain.callers.models import IntegrationCaller
from keyledger.domain.callers.permissions import required_for
from keyledger.domain.guessing.models import GuessBudget, token_caller
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.errors import InvalidInput, Unauthenticated
from keyledger.kit.inputs import refused_character
from keyledger.kit.settings import Settings
from keyledger.web.api import schemas
from keyledger.web.context import ContextDep, client_address
from keyledger.web.routing import error_responses, parse_json, read_body, require_json

Model = TypeVar("Model", bound=schemas.ApiModel)

#: Every /api/v1 path begins so.
PREFIX = "/api/v1"


async def integration_caller(request: Request, context: ContextDep) -> IntegrationCaller:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")

    def authenticate() -> IntegrationCaller:
        if scheme.lower() != "bearer" or not token.strip() or refused_character(token):
            raise Unauthenticated("Send Authorization: Bearer <AccessToken>.")
        return authenticate_access_token(
            context.store, access_token=token.strip(), cache=context.caller_cache
        )

    caller = await context.auth_throttle.secret(authenticate, address=client_address(request))
    caller.require(required_for(request.scope["route"].operation_id))  # 403 MissingScope
    return caller


CallerDep = Annotated[IntegrationCaller, Depends(integration_caller)]


async def read_model(request: Request, context: ContextDep, model: type[Model]) -> Model:
    require_json(request)
    payload = parse_json(await read_body(request, context.settings.max_body_bytes))
    return model.model_validate(payload)


ERRORS = error_responses(
    schemas.ApiError,
    {
        400: "Invalid input.",
        401: "Missing, unknown or revoked AccessToken.",
        403: "An enterprise outside the token's scope (`OutOfScope`), or an operation outside "
        "the token's scopes (`MissingScope`, naming the scope).",
        404: "No such resource in scope.",
        409: "A rule refused the change.",
        413: "The body is larger than KEYLEDGER_MAX_BODY_BYTES.",
        415: "The body is not sent as application/json.",
        429: "Too many failed authentications for this token or address (Retry-After).",
        500: "Unexpected fault.",
        503: "The credential store is unavailable; nothing was changed (Retry-After).",
    },
)


def target(scope: Scope, enterprise_id: UUID | None) -> Property:
    """The property an operation writing to ``enterprise_id`` (or none: the token's only one)
    works in."""
    if enterprise_id is not None:
        return scope.enterprise(enterprise_id)
    if scope.is_portfolio:
        raise InvalidInput("Give EnterpriseId with a portfolio access token.", subject="enterprise")
    return scope.properties[0]


def narrowed(scope: Scope, enterprise_id: UUID | None) -> Scope:
    """The scope an operation naming ``enterprise_id`` (or none: the whole scope) works in."""
    return scope if enterprise_id is None else scope.narrow_to_enterprises([enterprise_id])


def guess_budget(settings: Settings) -> GuessBudget:
    return GuessBudget(
        per_caller=settings.guess_budget_per_caller,
        per_property=settings.guess_budget_per_property,
        window_seconds=settings.guess_window_seconds,
    )


def reader_policy(settings: Settings) -> ReaderPolicy:
    return ReaderPolicy(
        failures=settings.reader_failure_limit,
        window_seconds=settings.reader_failure_window_seconds,
        cooldown_seconds=settings.reader_cooldown_seconds,
    )


def guesser(caller: IntegrationCaller) -> str:
    """The guessing budget's caller: the access token (its connection)."""
    return token_caller(caller.connection_id)
