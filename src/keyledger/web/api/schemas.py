"""Wire models of keyledger's own API."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StrictInt

from keyledger.store.schema import BUSINESS_ID_MAX
from keyledger.web.routing import UtcTimestamp

ResourceKindName = Literal["Building", "Floor", "Room", "Bed"]


class ApiModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ResourceInput(ApiModel):
    EnterpriseId: UUID | None = Field(
        default=None, description="Needed with a portfolio access token."
    )
    ParentId: UUID | None = None
    Kind: ResourceKindName
    Name: str = Field(min_length=1, max_length=200)


class ResourceOut(ApiModel):
    Id: UUID
    EnterpriseId: UUID
    ParentId: UUID | None
    Kind: ResourceKindName
    Name: str


class ResourceList(ApiModel):
    Resources: list[ResourceOut]


class AccessCheckInput(ApiModel):
    EnterpriseId: UUID | None = Field(
        default=None,
        description="The reader's enterprise: needed with a portfolio access token when more "
        "than one of its enterprises holds a resource ResourceId.",
    )
    ResourceId: UUID = Field(description="The reader's resource.")
    Type: Literal["PinCode", "RfidTag"]
    Value: str = Field(min_length=1, max_length=255)
    At: UtcTimestamp | None = Field(default=None, description="Default: now.")


class AccessDecisionOut(ApiModel):
    Granted: bool
    Reason: Literal[
        "Granted",
        "UnknownCredential",
        "NotYetValid",
        "Expired",
        "Deleted",
        "NoPermission",
        "Throttled",
    ]
    CredentialId: UUID | None
    ResourceId: UUID
    At: datetime
    ThrottledUntil: datetime | None


class ApiError(ApiModel):
    Status: int
    Error: str
    Message: str
    RequestId: str


class EventActor(ApiModel):
    Kind: Literal["integration", "user", "system"]
    Id: int | None
    Label: str
    AccessTokenId: int | None


class EventOut(ApiModel):
    Id: int
    OccurredUtc: datetime
    EnterpriseId: UUID | None
    Kind: str
    Actor: EventActor
    CredentialId: UUID | None
    ResourceId: UUID | None
    Outcome: str | None
    Details: dict[str, Any]


class EventList(ApiModel):
    Events: list[EventOut]
    Cursor: int | None


class SessionStart(ApiModel):
    BusinessId: StrictInt = Field(ge=1, le=BUSINESS_ID_MAX)
    AccessCode: str = Field(min_length=1, max_length=255)
    DeviceId: str = Field(min_length=1, max_length=200, description="e.g. the device's MAC")


class SessionOut(ApiModel):
    Granted: bool
    Reason: Literal[
        "Granted",
        "UnknownCredential",
        "NotYetValid",
        "Expired",
        "NoMinutesLeft",
        "TooManyDevices",
        "Throttled",
    ]
    SessionId: UUID | None
    CredentialId: UUID | None
    SecondsLeft: int = Field(description="Set the hotspot's session timeout to this.")
    MinutesLeft: int


class UsageReport(ApiModel):
    ElapsedSeconds: StrictInt = Field(
        ge=0, le=86_400, description="Seconds online since the last report."
    )


class EndReport(ApiModel):
    ElapsedSeconds: StrictInt = Field(default=0, ge=0, le=86_400)


class UsageOut(ApiModel):
    SessionId: UUID
    SecondsLeft: int
    MinutesLeft: int
    Ended: bool
    EndReason: Literal["Deleted", "Expired", "NoMinutesLeft", "NotYetValid", "Ended"] | None = (
        Field(
            description="Why the session ended: its voucher withdrawn (Deleted, Expired, "
            "NoMinutesLeft, NotYetValid; the device must go offline now) or the client's end "
            "report (Ended); null while it is open."
        )
    )
