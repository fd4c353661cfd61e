"""Mews wire models (requests and, for the OpenAPI description, responses).

Field names are the JSON property names, so a validation error's location names the property
the client sent. Unknown properties are ignored (tolerant reader).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt

from keyledger.web.routing import UtcTimestamp

MAX_ITEMS = 1000


def _uuid_text(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError("expected a uuid string")
    return value


Id = Annotated[UUID, BeforeValidator(_uuid_text)]
IdList = Annotated[list[Id], Field(min_length=1, max_length=MAX_ITEMS)]


class MewsModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class Authentication(MewsModel):
    ClientToken: str = Field(min_length=1, description="Token identifying the client application.")
    AccessToken: str = Field(min_length=1, description="Access token of the client application.")
    Client: str = Field(min_length=1, description="Name and version of the client application.")


class TimeIntervalParameters(MewsModel):
    """Half-open ``[StartUtc, EndUtc)``; equal bounds select that instant. At most 3 months."""

    StartUtc: UtcTimestamp
    EndUtc: UtcTimestamp


class LimitationParameters(MewsModel):
    Count: StrictInt = Field(ge=1, le=MAX_ITEMS)
    Cursor: Id | None = None


class GetAllRequest(Authentication):
    EnterpriseIds: IdList | None = None
    ResourceAccessTokenIds: IdList | None = None
    ServiceOrderIds: IdList | None = None
    CollidingUtc: TimeIntervalParameters | None = None
    UpdatedUtc: TimeIntervalParameters | None = None
    ActivityStates: list[Literal["Active", "Deleted"]] | None = Field(default=None, max_length=2)
    Limitation: LimitationParameters


class BoolUpdate(MewsModel):
    Value: StrictBool


class TimestampUpdate(MewsModel):
    Value: UtcTimestamp


class TokenValueUpdate(MewsModel):
    Value: str = Field(min_length=1, max_length=255)


class PermissionParameters(MewsModel):
    Bed: BoolUpdate | None = None
    Room: BoolUpdate | None = None
    Floor: BoolUpdate | None = None
    Building: BoolUpdate | None = None


class TokenParameters(MewsModel):
    ServiceOrderId: Id
    CompanionshipId: Id | None = None
    ResourceId: Id | None = None
    Type: Literal["PinCode", "RfidTag"]
    Value: str = Field(min_length=1, max_length=255)
    SerialNumber: str | None = Field(default=None, max_length=255)
    ValidityStartUtc: UtcTimestamp
    ValidityEndUtc: UtcTimestamp
    Permissions: PermissionParameters


class AddRequest(Authentication):
    EnterpriseId: Id | None = Field(
        default=None,
        description="keyledger extension: the enterprise to add to with a portfolio token.",
    )
    ResourceAccessTokenParameters: list[TokenParameters] = Field(min_length=1, max_length=MAX_ITEMS)


def _unwrap_update_value(value: Any) -> Any:
    """``ResourceAccessTokenId`` is a uuid; the older ``{"Value": uuid}`` form is accepted too."""
    if isinstance(value, dict) and set(value) == {"Value"}:
        return value["Value"]
    return value


class TokenUpdate(MewsModel):
    ResourceAccessTokenId: Annotated[Id, BeforeValidator(_unwrap_update_value)]
    ValidityStartUtc: TimestampUpdate | None = None
    ValidityEndUtc: TimestampUpdate | None = None
    Value: TokenValueUpdate | None = None
    Permissions: PermissionParameters | None = None


class UpdateRequest(Authentication):
    EnterpriseId: Id | None = None
    ResourceAccessTokenUpdates: list[TokenUpdate] = Field(min_length=1, max_length=MAX_ITEMS)


class DeleteRequest(Authentication):
    Ids: IdList


# ---- responses (documentation; the handlers render JSON directly) ----


class PermissionsOut(MewsModel):
    Bed: bool
    Room: bool
    Floor: bool
    Building: bool


class ResourceAccessTokenOut(MewsModel):
    model_config = ConfigDict(title="ResourceAccessToken", extra="forbid")

    Id: UUID
    EnterpriseId: UUID
    ServiceOrderId: UUID
    CompanionshipId: UUID | None
    ResourceId: UUID | None
    Type: Literal["PinCode", "RfidTag"]
    Value: str = Field(min_length=1)
    SerialNumber: str | None
    ValidityStartUtc: datetime
    ValidityEndUtc: datetime
    Permissions: PermissionsOut
    CreatedUtc: datetime
    UpdatedUtc: datetime
    IsActive: bool


class GetAllResponse(MewsModel):
    ResourceAccessTokens: list[ResourceAccessTokenOut]
    Cursor: UUID | None


class TokensResponse(MewsModel):
    ResourceAccessTokens: list[ResourceAccessTokenOut]


class EmptyResponse(MewsModel):
    model_config = ConfigDict(extra="forbid")


class ErrorResponse(MewsModel):
    Message: str
    RequestId: str
    Details: None = None
