"""``/api/v1/events``: the event log, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response

from keyledger.domain.callers.permissions import Permission
from keyledger.domain.events import service as events_service
from keyledger.domain.events.models import EventKind, EventQuery
from keyledger.kit.clock import parse_utc_seconds
from keyledger.kit.errors import InvalidInput
from keyledger.store.schema import events as events_table
from keyledger.store.schema import integer_bounds
from keyledger.web.api import schemas
from keyledger.web.api.common import ERRORS, PREFIX, CallerDep
from keyledger.web.api.errors import ApiRoute
from keyledger.web.api.render import render_events
from keyledger.web.context import ContextDep
from keyledger.web.routing import json_response

router = APIRouter(prefix=PREFIX, tags=["keyledger"], route_class=ApiRoute)

#: Event ids are row ids: bounded by their column (``integer_bounds``).
_EVENT_ID_MAX = integer_bounds(events_table.c.id)[1]


@router.get(
    "/events",
    operation_id="v1_events_list",
    summary="The event log, newest first (keyset pagination with Cursor)",
    response_model=schemas.EventList,
    responses=ERRORS,
)
async def list_events(
    *,
    request: Request,
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
    _refuse_repeated(request, lists={"Kind"})
    query = EventQuery(
        credential_uid=CredentialId,
        resource_uid=ResourceId,
        kinds=tuple(Kind or ()),
        start=_instant("StartUtc", StartUtc),
        end=_instant("EndUtc", EndUtc),
        limit=Limit,
        before=Cursor,
    )
    found = events_service.list_events(
        context.store, property_ids=caller.scope.property_ids, query=query
    )
    return json_response(
        render_events(
            found,
            caller.scope.by_id,
            show_credentials=caller.holds(Permission.CREDENTIALS_READ),
        )
    )


def _refuse_repeated(request: Request, *, lists: set[str]) -> None:
    """A parameter of one value given more than once (``Limit=1&Limit=3``) is a 400 naming it,
    rather than read as its last value; ``lists`` may repeat."""
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in seen and name not in lists:
            raise InvalidInput(f"{name}: is given more than once.", subject=name)
        seen.add(name)


def _instant(name: str, text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        return parse_utc_seconds(text)
    except ValueError as error:
        raise InvalidInput(f"{name}: {error}.", subject=name) from None
