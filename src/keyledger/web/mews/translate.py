"""Wire models to core requests, core results to wire JSON."""

from __future__ import annotations

from typing import Any

from dateutil.relativedelta import relativedelta

from keyledger.domain.credentials.models import (
    ActivityState,
    Credential,
    Page,
    PermissionChanges,
    Permissions,
    ReservationTokenChange,
    ReservationTokenDraft,
    ReservationTokenQuery,
    TimeInterval,
    TokenType,
)
from keyledger.kit.clock import format_utc
from keyledger.web.mews import schemas
from keyledger.web.mews.errors import invalid

MAX_INTERVAL = relativedelta(months=3)


def _interval(name: str, given: schemas.TimeIntervalParameters | None) -> TimeInterval | None:
    if given is None:
        return None
    if given.EndUtc < given.StartUtc:
        raise invalid(name, f"{name}.EndUtc is before {name}.StartUtc.")
    if given.EndUtc > given.StartUtc + MAX_INTERVAL:
        raise invalid(name, f"{name} spans more than 3 months.")
    return TimeInterval(start=given.StartUtc, end=given.EndUtc)


def to_query(body: schemas.GetAllRequest) -> ReservationTokenQuery:
    if (
        body.ResourceAccessTokenIds is None
        and body.ServiceOrderIds is None
        and body.CollidingUtc is None
        and body.UpdatedUtc is None
    ):
        raise invalid(
            "ResourceAccessTokenIds",
            "give at least one filter of ResourceAccessTokenIds, ServiceOrderIds, "
            "CollidingUtc or UpdatedUtc.",
        )
    states = frozenset(ActivityState(state) for state in body.ActivityStates or ())
    return ReservationTokenQuery(
        credential_ids=body.ResourceAccessTokenIds,
        service_order_ids=body.ServiceOrderIds,
        colliding=_interval("CollidingUtc", body.CollidingUtc),
        updated=_interval("UpdatedUtc", body.UpdatedUtc),
        states=states or frozenset(ActivityState),
        enterprise_ids=body.EnterpriseIds,
        count=body.Limitation.Count,
        cursor=body.Limitation.Cursor,
    )


def _flag(update: schemas.BoolUpdate | None) -> bool | None:
    return None if update is None else update.Value


def _permission_changes(given: schemas.PermissionParameters | None) -> PermissionChanges:
    if given is None:
        return PermissionChanges()
    return PermissionChanges(
        bed=_flag(given.Bed),
        room=_flag(given.Room),
        floor=_flag(given.Floor),
        building=_flag(given.Building),
    )


def to_drafts(body: schemas.AddRequest) -> list[ReservationTokenDraft]:
    return [
        ReservationTokenDraft(
            service_order_id=item.ServiceOrderId,
            token_type=TokenType(item.Type),
            value=item.Value,
            valid_from=item.ValidityStartUtc,
            valid_to=item.ValidityEndUtc,
            permissions=_permission_changes(item.Permissions).apply(Permissions()),
            companionship_id=item.CompanionshipId,
            resource_id=item.ResourceId,
            serial_number=item.SerialNumber,
        )
        for item in body.ResourceAccessTokenParameters
    ]


def to_changes(body: schemas.UpdateRequest) -> list[ReservationTokenChange]:
    return [
        ReservationTokenChange(
            credential_id=item.ResourceAccessTokenId,
            valid_from=None if item.ValidityStartUtc is None else item.ValidityStartUtc.Value,
            valid_to=None if item.ValidityEndUtc is None else item.ValidityEndUtc.Value,
            value=None if item.Value is None else item.Value.Value,
            permissions=_permission_changes(item.Permissions),
        )
        for item in body.ResourceAccessTokenUpdates
    ]


def _optional(value: object) -> str | None:
    return None if value is None else str(value)


def render_token(credential: Credential) -> dict[str, Any]:
    assert credential.token_type is not None
    assert credential.valid_from is not None and credential.valid_to is not None
    permissions = credential.permissions
    return {
        "Id": str(credential.uid),
        "EnterpriseId": str(credential.property.enterprise_id),
        "ServiceOrderId": str(credential.service_order_id),
        "CompanionshipId": _optional(credential.companionship_id),
        "ResourceId": _optional(credential.resource_id),
        "Type": credential.token_type.value,
        "Value": credential.value,
        "SerialNumber": credential.serial_number,
        "ValidityStartUtc": format_utc(credential.valid_from),
        "ValidityEndUtc": format_utc(credential.valid_to),
        "Permissions": {
            "Bed": permissions.bed,
            "Room": permissions.room,
            "Floor": permissions.floor,
            "Building": permissions.building,
        },
        "CreatedUtc": format_utc(credential.created_utc),
        "UpdatedUtc": format_utc(credential.updated_utc),
        "IsActive": credential.is_active,
    }


def render_page(page: Page) -> dict[str, Any]:
    return {
        "ResourceAccessTokens": [render_token(c) for c in page.credentials],
        "Cursor": _optional(page.cursor),
    }


def render_tokens(credentials: list[Credential]) -> dict[str, Any]:
    return {"ResourceAccessTokens": [render_token(c) for c in credentials]}
