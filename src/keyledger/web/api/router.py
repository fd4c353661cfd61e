"""``/api/v1``: the resource tree and door checks, for an integration's AccessToken
(``Authorization: Bearer <AccessToken>``), scoped to the token's enterprises."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, TypeVar
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response

from keyledger.domain.access import service as access
from keyledger.domain.access.models import DoorCheck, ReaderPolicy
from keyledger.domain.callers.integrations import authenticate_access_token
from keyledger.domain.callers.models import IntegrationCaller, Scope
from keyledger.domain.callers.permissions import Permission, required_for
from keyledger.domain.credentials.collisions import reach_check
from keyledger.domain.events import service as events_service
from keyledger.domain.events.models import EventKind, EventQuery
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.service import GuessBudget
from keyledger.domain.hotspot import service as hotspot
from keyledger.domain.properties.models import Property
from keyledger.domain.resources import service as resources
from keyledger.domain.resources.models import Resource, ResourceDraft, ResourceKind
from keyledger.kit.clock import format_utc, parse_utc_seconds, utc_now
from keyledger.kit.errors import InvalidInput, Unauthenticated
from keyledger.kit.inputs import refused_character
from keyledger.store.schema import events as events_table
from keyledger.store.schema import integer_bounds
from keyledger.web.api import schemas
from keyledger.web.api.errors import ApiRoute
from keyledger.web.api.render import render_events
from keyledger.web.context import AppContext, ContextDep, client_address
from keyledger.web.middleware import request_id_of
from keyledger.web.routing import (
    error_responses,
    json_response,
    parse_json,
    read_body,
    request_body,
    require_json,
)

Model = TypeVar("Model", bound=schemas.ApiModel)


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


_ERRORS = error_responses(
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


def render_resource(resource: Resource, scope: Scope) -> dict[str, Any]:
    return {
        "Id": str(resource.uid),
        "EnterpriseId": str(scope.by_id[resource.property_id].enterprise_id),
        "ParentId": None if resource.parent_uid is None else str(resource.parent_uid),
        "Kind": resource.kind.value,
        "Name": resource.name,
    }


def _target(scope: Scope, enterprise_id: UUID | None) -> Property:
    if enterprise_id is not None:
        return scope.enterprise(enterprise_id)
    if scope.is_portfolio:
        raise InvalidInput("Give EnterpriseId with a portfolio access token.", subject="enterprise")
    return scope.properties[0]


def _narrowed(scope: Scope, enterprise_id: UUID | None) -> Scope:
    """The scope an operation naming ``enterprise_id`` (or none: the whole scope) works in."""
    return scope if enterprise_id is None else scope.narrow_to_enterprises([enterprise_id])


def _budget(context: AppContext) -> GuessBudget:
    settings = context.settings
    return GuessBudget(
        per_caller=settings.guess_budget_per_caller,
        per_property=settings.guess_budget_per_property,
        window_seconds=settings.guess_window_seconds,
    )


def _guesser(caller: IntegrationCaller) -> str:
    """The guessing budget's caller: the access token (its connection)."""
    return guessing.token_caller(caller.connection_id)


router = APIRouter(prefix="/api/v1", tags=["keyledger"], route_class=ApiRoute)


@router.get(
    "/resources",
    operation_id="v1_resources_list",
    summary="The resource trees of the token's enterprises (parents before children)",
    response_model=schemas.ResourceList,
    responses=_ERRORS,
)
async def list_resources(
    caller: CallerDep,
    context: ContextDep,
    EnterpriseId: UUID | None = None,  # noqa: N803
) -> Response:
    scope = (
        caller.scope if EnterpriseId is None else caller.scope.narrow_to_enterprises([EnterpriseId])
    )
    found = resources.list_resources(context.store, scope=scope)
    return json_response({"Resources": [render_resource(r, scope) for r in found]})


@router.get(
    "/resources/{resource_id}",
    operation_id="v1_resources_get",
    summary="One resource",
    response_model=schemas.ResourceOut,
    responses=_ERRORS,
)
async def get_resource(
    resource_id: UUID,
    caller: CallerDep,
    context: ContextDep,
    EnterpriseId: UUID | None = None,  # noqa: N803
) -> Response:
    scope = _narrowed(caller.scope, EnterpriseId)
    found = resources.find_resource(context.store, scope=scope, uid=resource_id)
    return json_response(render_resource(found, caller.scope))


@router.put(
    "/resources/{resource_id}",
    operation_id="v1_resources_put",
    summary="Create or replace a resource",
    response_model=schemas.ResourceOut,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.ResourceInput),
)
async def put_resource(
    resource_id: UUID,
    request: Request,
    caller: CallerDep,
    context: ContextDep,
) -> Response:
    body = await read_model(request, context, schemas.ResourceInput)
    target = _target(caller.scope, body.EnterpriseId)
    draft = ResourceDraft(
        uid=resource_id, parent_uid=body.ParentId, kind=ResourceKind(body.Kind), name=body.Name
    )
    (saved,) = resources.save_resources(
        context.store,
        actor=caller.actor,
        batches={target: [draft]},
        on_reach_change=reach_check(context.store.sealer),
    )
    return json_response(render_resource(saved, caller.scope))


@router.delete(
    "/resources/{resource_id}",
    operation_id="v1_resources_delete",
    summary="Delete a resource without children",
    status_code=204,
    responses=_ERRORS,
)
async def delete_resource(
    resource_id: UUID,
    caller: CallerDep,
    context: ContextDep,
    EnterpriseId: UUID | None = None,  # noqa: N803
) -> Response:
    resources.delete_resource(
        context.store,
        scope=_narrowed(caller.scope, EnterpriseId),
        actor=caller.actor,
        uid=resource_id,
    )
    return Response(status_code=204)


@router.post(
    "/access/check",
    operation_id="v1_access_check",
    summary="Does this credential open this reader now?",
    response_model=schemas.AccessDecisionOut,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.AccessCheckInput),
)
async def access_check(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = await read_model(request, context, schemas.AccessCheckInput)
    settings = context.settings
    now = utc_now()
    check = DoorCheck(
        reader_uid=body.ResourceId, token_type=body.Type, value=body.Value, at=body.At or now
    )
    policy = ReaderPolicy(
        failures=settings.reader_failure_limit,
        window_seconds=settings.reader_failure_window_seconds,
        cooldown_seconds=settings.reader_cooldown_seconds,
    )
    budget = _budget(context)
    decision = access.decide(
        context.store,
        scope=_narrowed(caller.scope, body.EnterpriseId),
        check=check,
        policy=policy,
        now=now,
        caller=_guesser(caller),
        budget=budget,
    )
    # The answer is the decision as its write found it: a budget used up or the reader locked by
    # checks in flight with this one makes it Throttled (access/service.py, ``record``).
    decision = await context.writer.run(
        partial(
            access.record,
            decision=decision,
            check=check,
            actor=caller.actor,
            policy=policy,
            now=now,
            budget=budget,
        ),
        locks=access.record_locks(decision),
    )
    return json_response(
        {
            "Granted": decision.granted,
            "Reason": decision.reason.value,
            # Which credential matched is shown only to a token that may read credentials.
            "CredentialId": None
            if decision.credential_uid is None or not caller.holds(Permission.CREDENTIALS_READ)
            else str(decision.credential_uid),
            "ResourceId": str(decision.reader_uid),
            "At": format_utc(decision.at),
            "ThrottledUntil": None
            if decision.throttled_until is None
            else format_utc(decision.throttled_until),
        }
    )


@router.post(
    "/hotspot/sessions",
    operation_id="v1_hotspot_session_start",
    summary="May this device go online with this voucher? (the same device gets its session back)",
    response_model=schemas.SessionOut,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.SessionStart),
)
async def start_session(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = await read_model(request, context, schemas.SessionStart)
    decision = await context.writer.run(
        partial(
            hotspot.start_session,
            scope=caller.scope,
            actor=caller.actor,
            business_id=body.BusinessId,
            access_code=body.AccessCode,
            device_id=body.DeviceId,
            idle_seconds=context.settings.hotspot_idle_seconds,
            caller=_guesser(caller),
            budget=_budget(context),
        ),
        locks=hotspot.start_locks(
            caller.scope, caller=_guesser(caller), business_id=body.BusinessId
        ),
    )
    return json_response(
        {
            "Granted": decision.granted,
            "Reason": decision.reason.value,
            "SessionId": _text(decision.session_uid),
            "CredentialId": _text(decision.credential_uid),
            "SecondsLeft": decision.seconds_left,
            "MinutesLeft": decision.minutes_left,
        }
    )


async def _usage(
    request: Request, caller: IntegrationCaller, context: AppContext, session_id: UUID, *, end: bool
) -> Response:
    if end:
        elapsed = (await read_model(request, context, schemas.EndReport)).ElapsedSeconds
    else:
        elapsed = (await read_model(request, context, schemas.UsageReport)).ElapsedSeconds
    usage = await context.writer.run(
        partial(
            hotspot.report_usage,
            scope=caller.scope,
            actor=caller.actor,
            session_uid=session_id,
            elapsed_seconds=elapsed,
            end=end,
            idle_seconds=context.settings.hotspot_idle_seconds,
        )
    )
    return json_response(
        {
            "SessionId": str(usage.session_uid),
            "SecondsLeft": usage.seconds_left,
            "MinutesLeft": usage.minutes_left,
            "Ended": usage.ended,
            "EndReason": None if usage.end_reason is None else usage.end_reason.value,
        }
    )


@router.post(
    "/hotspot/sessions/{session_id}/usage",
    operation_id="v1_hotspot_session_usage",
    summary="Report seconds online; they come off the voucher's minutes atomically",
    response_model=schemas.UsageOut,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.UsageReport),
)
async def report_usage(
    session_id: UUID, request: Request, caller: CallerDep, context: ContextDep
) -> Response:
    return await _usage(request, caller, context, session_id, end=False)


@router.post(
    "/hotspot/sessions/{session_id}/end",
    operation_id="v1_hotspot_session_end",
    summary="End a session, with its last seconds online",
    response_model=schemas.UsageOut,
    responses=_ERRORS,
    openapi_extra=request_body(schemas.EndReport),
)
async def end_session(
    session_id: UUID, request: Request, caller: CallerDep, context: ContextDep
) -> Response:
    return await _usage(request, caller, context, session_id, end=True)


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


#: Event ids are row ids: bounded by their column (``integer_bounds``).
_EVENT_ID_MAX = integer_bounds(events_table.c.id)[1]


@router.get(
    "/events",
    operation_id="v1_events_list",
    summary="The event log, newest first (keyset pagination with Cursor)",
    response_model=schemas.EventList,
    responses=_ERRORS,
)
async def list_events(
    *,
    caller: CallerDep,
    context: ContextDep,
    CredentialId: UUID | None = None,  # noqa: N803
    ResourceId: UUID | None = None,  # noqa: N803
    Kind: Annotated[list[EventKind] | None, Query()] = None,  # noqa: N803
    StartUtc: str | None = None,  # noqa: N803
    EndUtc: str | None = None,  # noqa: N803
    Limit: Annotated[int, Query(ge=1, le=1000)] = 100,  # noqa: N803
    Cursor: Annotated[int | None, Query(ge=1, le=_EVENT_ID_MAX)] = None,  # noqa: N803  (a row id)
) -> Response:
    query = EventQuery(
        credential_uid=CredentialId,
        resource_uid=ResourceId,
        kinds=tuple(Kind or ()),
        start=_instant("StartUtc", StartUtc),
        end=_instant("EndUtc", EndUtc),
        limit=Limit,
        before=Cursor,
    )
    found = events_service.list_events(context.store, scope=caller.scope, query=query)
    return json_response(
        render_events(
            found,
            caller.scope.by_id,
            show_credentials=caller.holds(Permission.CREDENTIALS_READ),
        )
    )


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_utc_seconds(text)
    except ValueError as error:
        raise InvalidInput(f"{name}: {error}.", subject=name) from None


REQUEST_SCHEMAS: tuple[type[schemas.ApiModel], ...] = (
    schemas.ResourceInput,
    schemas.AccessCheckInput,
    schemas.SessionStart,
    schemas.UsageReport,
    schemas.EndReport,
)


#: Every other path and method under /api/v1 answers 404 in this API's shape (not the
#: framework's ``{"detail": …}``).
unknown_router = APIRouter(tags=["keyledger"], route_class=ApiRoute)


@unknown_router.api_route(
    "/api/v1/{rest:path}",
    methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
    include_in_schema=False,
    operation_id="v1_unknown",
)
async def unknown(request: Request) -> Response:
    return json_response(
        {
            "Status": 404,
            "Error": "NotFound",
            "Message": f"No operation at {request.url.path} ({request.method}).",
            "RequestId": request_id_of(request.scope),
        },
        status_code=404,
    )
