"""``/api/v1/hotspot/sessions``: hotspot sessions on Nexudus vouchers."""

from __future__ import annotations

from functools import partial
from uuid import UUID

from fastapi import APIRouter, Request, Response

from keyledger.domain.callers.models import IntegrationCaller
from keyledger.domain.hotspot import service as hotspot
from keyledger.web.api import schemas
from keyledger.web.api.common import (
    ERRORS,
    PREFIX,
    CallerDep,
    guess_budget,
    guesser,
    read_model,
)
from keyledger.web.api.errors import ApiRoute
from keyledger.web.api.render import render_session, render_usage
from keyledger.web.context import AppContext, ContextDep
from keyledger.web.routing import json_response, request_body

router = APIRouter(prefix=PREFIX, tags=["keyledger"], route_class=ApiRoute)


@router.post(
    "/hotspot/sessions",
    operation_id="v1_hotspot_session_start",
    summary="May this device go online with this voucher? (the same device gets its session back)",
    response_model=schemas.SessionOut,
    responses=ERRORS,
    openapi_extra=request_body(schemas.SessionStart),
)
async def start_session(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = await read_model(request, context, schemas.SessionStart)
    start = hotspot.SessionStart(
        scope=caller.scope,
        actor=caller.actor,
        business_id=body.BusinessId,
        access_code=body.AccessCode,
        device_id=body.DeviceId,
        idle_seconds=context.settings.hotspot_idle_seconds,
        caller=guesser(caller),
        budget=guess_budget(context.settings),
    )
    decision = await context.writer.run_batched(
        hotspot.start_sessions,
        start,
        locks=hotspot.start_locks(
            caller.scope, business_id=body.BusinessId, access_code=body.AccessCode
        ),
        wanted=hotspot.miss_locks(
            caller.scope, caller=guesser(caller), business_id=body.BusinessId
        ),
    )
    return json_response(render_session(decision))


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
    return json_response(render_usage(usage))


@router.post(
    "/hotspot/sessions/{session_id}/usage",
    operation_id="v1_hotspot_session_usage",
    summary="Report seconds online; they come off the voucher's minutes atomically",
    response_model=schemas.UsageOut,
    responses=ERRORS,
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
    responses=ERRORS,
    openapi_extra=request_body(schemas.EndReport),
)
async def end_session(
    session_id: UUID, request: Request, caller: CallerDep, context: ContextDep
) -> Response:
    return await _usage(request, caller, context, session_id, end=True)
