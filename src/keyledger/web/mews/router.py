"""Mews Connector API: ``POST /api/connector/v1/resourceAccessTokens/{getAll,add,update,delete}``.

Each request is read in this order: body (413, ``Invalid JSON``), credentials in the body (401),
rate limit per AccessToken (429), the token's scopes (403, callers/permissions.py), then the
operation's own properties (400).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypedDict, TypeVar

from fastapi import APIRouter, Depends, Request, Response

from keyledger.domain.callers.integrations import authenticate_integration
from keyledger.domain.callers.models import IntegrationCaller
from keyledger.domain.callers.permissions import Permission, required_for
from keyledger.domain.credentials import reservations
from keyledger.domain.guessing.models import GuessBudget, token_caller
from keyledger.kit.errors import Unauthenticated
from keyledger.web.context import AppContext, ContextDep, client_address
from keyledger.web.mews import schemas, translate
from keyledger.web.mews.errors import MewsError, MewsRoute, error_response
from keyledger.web.routing import (
    error_responses,
    json_response,
    parse_json,
    read_body,
    request_body,
    require_json,
)

PREFIX = "/api/connector/v1/resourceAccessTokens"
TAG = "Mews"

Body = TypeVar("Body", bound=schemas.Authentication)


@dataclass(frozen=True, slots=True)
class MewsCall(Generic[Body]):
    caller: IntegrationCaller
    body: Body


def _text(payload: dict[str, Any], name: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise Unauthenticated(f"{name} is missing or empty.")
    return value


def mews_call(model: type[Body]) -> Callable[..., Awaitable[MewsCall[Body]]]:
    async def dependency(request: Request, context: ContextDep) -> MewsCall[Body]:
        require_json(request)
        payload = parse_json(await read_body(request, context.settings.max_body_bytes))
        if not isinstance(payload, dict):
            raise MewsError(400, "Invalid JSON: the body must be a JSON object.")
        caller = await context.auth_throttle.secret(
            lambda: authenticate_integration(
                context.store,
                client_token=_text(payload, "ClientToken"),
                access_token=_text(payload, "AccessToken"),
                cache=context.caller_cache,
            ),
            address=client_address(request),
        )
        _text(payload, "Client")
        retry_after = await context.rate_limiter.hit(context.mews_limit, str(caller.connection_id))
        if retry_after is not None:
            raise MewsError(
                429,
                f"Too many requests for this AccessToken; retry after {retry_after} s.",
                headers={"Retry-After": str(retry_after)},
            )
        caller.require(required_for(request.scope["route"].operation_id))
        return MewsCall(caller=caller, body=model.model_validate(payload))

    return dependency


GetAllCall = Annotated[MewsCall[schemas.GetAllRequest], Depends(mews_call(schemas.GetAllRequest))]
AddCall = Annotated[MewsCall[schemas.AddRequest], Depends(mews_call(schemas.AddRequest))]
UpdateCall = Annotated[MewsCall[schemas.UpdateRequest], Depends(mews_call(schemas.UpdateRequest))]
DeleteCall = Annotated[MewsCall[schemas.DeleteRequest], Depends(mews_call(schemas.DeleteRequest))]


async def prefers_minimal(request: Request) -> bool:
    """``Prefer: return=minimal``: an empty page or a delete answers 204 without a body."""
    prefer = request.headers.get("prefer", "")
    return "return=minimal" in prefer.replace(" ", "").lower()


MinimalDep = Annotated[bool, Depends(prefers_minimal)]


_ERRORS = error_responses(
    schemas.ErrorResponse,
    {
        400: "Malformed request: `Invalid <Property>`.",
        401: "Missing, unknown, revoked or disabled ClientToken/AccessToken/Client.",
        403: "A business rule refused the request (validity, deleted token, enterprise), or the "
        "AccessToken lacks the operation's scope (the message names it).",
        408: "The request ran past the processing time limit; nothing was kept.",
        413: "The body is larger than the configured limit.",
        429: "Rate limit per AccessToken; see the Retry-After header.",
        500: "Unexpected fault; nothing internal is shown.",
    },
)


router = APIRouter(prefix=PREFIX, tags=[TAG], route_class=MewsRoute)


class CollisionTerms(TypedDict):
    reveal_conflicts: bool
    caller: str
    budget: GuessBudget


def _collision_terms(caller: IntegrationCaller, context: AppContext) -> CollisionTerms:
    """How a collision refusal is told to this caller: in full (item, other token) to one that
    may read values anyway; otherwise concealed, and paid from its guessing budget
    (docs/access.md, "The collision rule")."""
    settings = context.settings
    return {
        "reveal_conflicts": caller.holds(Permission.CREDENTIALS_READ),
        "caller": token_caller(caller.connection_id),
        "budget": GuessBudget(
            per_caller=settings.guess_budget_per_caller,
            per_property=settings.guess_budget_per_property,
            window_seconds=settings.guess_window_seconds,
        ),
    }


@router.post(
    "/getAll",
    operation_id="mews_resourceAccessTokens_getAll",
    summary="Get all resource access tokens",
    response_model=schemas.GetAllResponse,
    responses={204: {"description": "Empty page with `Prefer: return=minimal`."}, **_ERRORS},
    openapi_extra=request_body(schemas.GetAllRequest),
)
async def get_all(call: GetAllCall, context: ContextDep, minimal: MinimalDep) -> Response:
    page = reservations.list_reservation_tokens(
        context.store, scope=call.caller.scope, query=translate.to_query(call.body)
    )
    if not page.credentials and minimal:
        return Response(status_code=204)
    return json_response(translate.render_page(page))


@router.post(
    "/add",
    operation_id="mews_resourceAccessTokens_add",
    summary="Add resource access tokens",
    response_model=schemas.TokensResponse,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.AddRequest),
)
async def add(call: AddCall, context: ContextDep) -> Response:
    created = reservations.add_reservation_tokens(
        context.store,
        scope=call.caller.scope,
        actor=call.caller.actor,
        drafts=translate.to_drafts(call.body),
        enterprise_id=call.body.EnterpriseId,
        **_collision_terms(call.caller, context),
    )
    return json_response(translate.render_tokens(created))


@router.post(
    "/update",
    operation_id="mews_resourceAccessTokens_update",
    summary="Update resource access tokens",
    response_model=schemas.TokensResponse,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.UpdateRequest),
)
async def update(call: UpdateCall, context: ContextDep) -> Response:
    updated = reservations.update_reservation_tokens(
        context.store,
        scope=call.caller.scope,
        actor=call.caller.actor,
        changes=translate.to_changes(call.body),
        enterprise_id=call.body.EnterpriseId,
        **_collision_terms(call.caller, context),
    )
    return json_response(translate.render_tokens(updated))


@router.post(
    "/delete",
    operation_id="mews_resourceAccessTokens_delete",
    summary="Delete resource access tokens",
    response_model=schemas.EmptyResponse,
    responses={204: {"description": "Deleted, with `Prefer: return=minimal`."}, **_ERRORS},
    openapi_extra=request_body(schemas.DeleteRequest),
)
async def delete(call: DeleteCall, context: ContextDep, minimal: MinimalDep) -> Response:
    reservations.delete_reservation_tokens(
        context.store,
        scope=call.caller.scope,
        actor=call.caller.actor,
        credential_ids=call.body.Ids,
    )
    if minimal:
        return Response(status_code=204)
    return json_response({})


#: Every other path or method under /api/connector/ answers 404 in the Mews error shape.
unknown_router = APIRouter(tags=[TAG], route_class=MewsRoute)

REQUEST_SCHEMAS: tuple[type[schemas.MewsModel], ...] = (
    schemas.GetAllRequest,
    schemas.AddRequest,
    schemas.UpdateRequest,
    schemas.DeleteRequest,
)


@unknown_router.api_route(
    "/api/connector/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    operation_id="mews_unknown",
)
async def unknown(request: Request) -> Response:
    return error_response(request, 404, f"No operation at {request.url.path} ({request.method}).")
