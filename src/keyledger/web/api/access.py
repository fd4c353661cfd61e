"""``/api/v1/access/check``: door checks (the rule and its recording: domain/access/service.py)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from keyledger.domain.access import service as access
from keyledger.domain.callers.permissions import Permission
from keyledger.web.api import schemas
from keyledger.web.api.common import (
    ERRORS,
    PREFIX,
    CallerDep,
    guess_budget,
    guesser,
    narrowed,
    read_model,
    reader_policy,
)
from keyledger.web.api.errors import ApiRoute
from keyledger.web.api.render import render_decision
from keyledger.web.context import ContextDep
from keyledger.web.routing import json_response, request_body

router = APIRouter(prefix=PREFIX, tags=["keyledger"], route_class=ApiRoute)


@router.post(
    "/access/check",
    operation_id="v1_access_check",
    summary="Does this credential open this reader now?",
    response_model=schemas.AccessDecisionOut,
    responses=ERRORS,
    openapi_extra=request_body(schemas.AccessCheckInput),
)
async def access_check(request: Request, caller: CallerDep, context: ContextDep) -> Response:
    body = await read_model(request, context, schemas.AccessCheckInput)
    decision = await access.check_door(
        context.store,
        context.writer,
        scope=narrowed(caller.scope, body.EnterpriseId),
        actor=caller.actor,
        caller=guesser(caller),
        reader_uid=body.ResourceId,
        token_type=body.Type,
        value=body.Value,
        at=body.At,
        policy=reader_policy(context.settings),
        budget=guess_budget(context.settings),
    )
    return json_response(
        render_decision(decision, show_credential=caller.holds(Permission.CREDENTIALS_READ))
    )
