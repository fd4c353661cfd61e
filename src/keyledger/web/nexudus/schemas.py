"""Nexudus wire models. Input is read as ASP.NET model binding would: numbers may come as
strings (form posts), unknown and read-only properties are ignored, times without a zone are UTC."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from keyledger.store.schema import BUSINESS_ID_MAX, MINUTES_MAX, USER_LIMIT_MAX
from keyledger.web.nexudus.times import parse_time

#: Largest integer accepted anywhere in the Nexudus dialect (ids, numbers): what a JavaScript
#: client can hold exactly, and far inside the store's 64-bit row ids.
NUMBER_LIMIT = 2**53


RecordId = Annotated[int, Field(ge=-NUMBER_LIMIT, le=NUMBER_LIMIT)]


def _not_a_bool(value: Any) -> Any:
    """A JSON ``true``/``false`` is no number to ASP.NET's model binding (pydantic would read it
    as 1/0): refused, as the commands' ``int`` parameters refuse it. Numbers as strings stay.
    (A model's ``field_validator``, so the fields' JSON schema keeps its ``minimum``/``maximum``.)
    """
    if isinstance(value, bool):
        raise ValueError("is not a valid integer")
    if isinstance(value, list):
        for item in value:
            _not_a_bool(item)
    return value


def _time(value: Any) -> Any:
    if value is None or isinstance(value, datetime):
        return value
    if not isinstance(value, str):
        raise ValueError("is not a valid date and time")
    return parse_time(value)[0]


NexudusTime = Annotated[
    datetime,
    BeforeValidator(_time),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]
Code = Annotated[str, Field(min_length=1, max_length=255)]


class NexudusModel(BaseModel):
    model_config = ConfigDict(extra="ignore")


class VoucherInput(NexudusModel):
    """``POST /api/spaces/accesstokens``: read-only properties sent by clients are ignored."""

    BusinessId: int = Field(ge=-BUSINESS_ID_MAX, le=BUSINESS_ID_MAX)
    AccessCode: Code
    MinutesIncluded: int = Field(ge=0, le=MINUTES_MAX)
    Description: str | None = Field(default=None, max_length=4000)
    ValidFrom: NexudusTime | None = None
    ValidTo: NexudusTime | None = None
    UserLimit: int | None = Field(default=None, ge=1, le=USER_LIMIT_MAX)
    SystemId: str | None = Field(default=None, max_length=4000)

    _integers = field_validator("BusinessId", "MinutesIncluded", "UserLimit", mode="before")(
        _not_a_bool
    )


class VoucherReplacement(VoucherInput):
    """``PUT /api/spaces/accesstokens``: every writable property left out is cleared."""

    Id: RecordId

    _id = field_validator("Id", mode="before")(_not_a_bool)


class CommandParameter(NexudusModel):
    Name: str | None = None
    Type: str | None = None
    Value: Any = None


class CommandRun(NexudusModel):
    Key: str = Field(min_length=1)
    Ids: list[RecordId] = Field(default_factory=list, max_length=1000)
    Parameters: list[CommandParameter] = Field(default_factory=list, max_length=20)

    _ids = field_validator("Ids", mode="before")(_not_a_bool)


# ---- responses (documentation; the handlers render JSON directly) ----


class Voucher(NexudusModel):
    Id: int
    AccessCode: str
    BusinessId: int
    Description: str | None
    LastAccess: datetime | None
    MinutesIncluded: int
    MinutesLeft: int
    UserLimit: int | None
    ValidFrom: datetime | None
    ValidTo: datetime | None
    CreatedOn: datetime
    UpdatedOn: datetime
    UpdatedBy: str
    UniqueId: UUID
    SystemId: str | None


class VoucherRecord(NexudusModel):
    Id: int
    Business: int
    AccessCode: str
    Description: str | None
    MinutesIncluded: int
    ValidFrom: datetime | None
    ValidTo: datetime | None
    UserLimit: int | None
    MinutesLeft: int
    LastAccess: datetime | None
    CreatedOn: datetime
    UpdatedOn: datetime
    UpdatedBy: str
    UniqueId: UUID
    SystemId: str | None


class VoucherList(NexudusModel):
    Records: list[VoucherRecord]
    CurrentPageSize: int
    CurrentPage: int
    CurrentOrderField: str
    CurrentSortDirection: int
    FirstItem: int
    HasNextPage: bool
    HasPreviousPage: bool
    LastItem: int
    PageNumber: int
    PageSize: int
    TotalItems: int
    TotalPages: int


class IdValue(NexudusModel):
    Id: int


class Success(NexudusModel):
    Status: int
    WasSuccessful: bool
    Message: str
    Value: IdValue | None


class Problem(NexudusModel):
    AttemptedValue: Any = None
    Message: str
    PropertyName: str


class Failure(NexudusModel):
    Status: int
    Message: str
    Value: None = None
    WasSuccessful: bool
    Errors: list[Problem]


class DeleteResult(NexudusModel):
    Status: int
    WasSuccessful: bool
    Message: str
    Value: None = None
    OpenInDialog: bool
    RedirectURL: str | None
    JavaScript: str | None
    Errors: list[Problem] | None


class CommandParameterInfo(NexudusModel):
    Name: str
    Type: str
    Required: bool


class CommandInfo(NexudusModel):
    Key: str
    Name: str
    AppliesOnlyToMultipleEntities: bool
    DisplayInDropdown: bool
    DisplayInDropdownV2: bool
    AppliesOnlyToOneEntity: bool
    AppliesOnlyToTwoEntities: bool
    DisplayInGrid: bool
    NeedsEntitiesToRun: bool
    Order: int
    RequiresParameters: list[CommandParameterInfo]


class CommandResult(NexudusModel):
    Errors: list[Problem] | None
    JavaScript: str | None
    Message: str
    OpenInDialog: bool
    OpenInWindow: bool
    RedirectURL: str | None
    Status: int
    UpdatedBy: str
    UpdatedOn: datetime
    Value: dict[str, Any] | None
    WasSuccessful: bool


class TokenGrant(NexudusModel):
    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str


class TokenError(NexudusModel):
    error: str
    error_description: str
