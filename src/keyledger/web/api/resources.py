"""``/api/v1/resources``: the resource trees of the token's enterprises."""

from __future__ import annotations

from uuid import UUID

from fastapi import APIRouter, Request, Response

from keyledger.domain.credentials.collisions import reach_check
from keyledger.domain.resources import service as resources
from keyledger.domain.resources.models import ResourceDraft, ResourceKind
from keyledger.web.api import schemas
from keyledger.web.api.common import ERRORS, PREFIX, CallerDep, narrowed, read_model, target
from keyledger.web.api.errors import ApiRoute
from keyledger.web.api.render import render_resource
from keyledger.web.context import ContextDep
from keyledger.web.routing import json_response, request_body

router = APIRouter(prefix=PREFIX, tags=["keyledger"], route_class=ApiRoute)


@router.get(
    "/resources",
    operation_id="v1_resources_list",
    summary="The resource trees of the token's enterprises (parents before children)",
    response_model=schemas.ResourceList,
    responses=ERRORS,
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
    responses=ERRORS,
)
async def get_resource(
    resource_id: UUID,
    caller: CallerDep,
    context: ContextDep,
    EnterpriseId: UUID | None = None,  # noqa: N803
) -> Response:
    scope = narrowed(caller.scope, EnterpriseId)
    found = resources.find_resource(context.store, scope=scope, uid=resource_id)
    return json_response(render_resource(found, caller.scope))


@router.put(
    "/resources/{resource_id}",
    operation_id="v1_resources_put",
    summary="Create or replace a resource",
    response_model=schemas.ResourceOut,
    responses=ERRORS,
    openapi_extra=request_body(schemas.ResourceInput),
)
async def put_resource(
    resource_id: UUID,
    request: Request,
    caller: CallerDep,
    context: ContextDep,
) -> Response:
    body = await read_model(request, context, schemas.ResourceInput)
    draft = ResourceDraft(
        uid=resource_id, parent_uid=body.ParentId, kind=ResourceKind(body.Kind), name=body.Name
    )
    (saved,) = resources.save_resources(
        context.store,
        actor=caller.actor,
        batches={target(caller.scope, body.EnterpriseId): [draft]},
        on_reach_change=reach_check(context.store.sealer),
    )
    return json_response(render_resource(saved, caller.scope))


@router.delete(
    "/resources/{resource_id}",
    operation_id="v1_resources_delete",
    summary="Delete a resource without children",
    status_code=204,
    responses=ERRORS,
)
async def delete_resource(
    resource_id: UUID,
    caller: CallerDep,
    context: ContextDep,
    EnterpriseId: UUID | None = None,  # noqa: N803
) -> Response:
    resources.delete_resource(
        context.store,
        scope=narrowed(caller.scope, EnterpriseId),
        actor=caller.actor,
        uid=resource_id,
    )
    return Response(status_code=204)
