"""``/api/v1``, for an integration's AccessToken (``Authorization: Bearer <AccessToken>``),
scoped to the token's enterprises: one router per domain (``resources``, ``access``, ``hotspot``,
``events``), their answers built in ``render``, what they share in ``common``. This module puts
them together in the order the OpenAPI document lists them."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from keyledger.web.api import access, events, hotspot, resources, schemas
from keyledger.web.api.errors import ApiRoute
from keyledger.web.middleware import request_id_of
from keyledger.web.routing import json_response

#: The routes of every domain, as they are (each domain's router gives their prefix, tags and
#: route class), so ``router.routes`` lists each operation (``check_covered``, the scope tests).
router = APIRouter()
for domain in (resources, access, hotspot, events):
    router.routes.extend(domain.router.routes)


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
