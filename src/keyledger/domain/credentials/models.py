from __future__ import annotations

import builtins
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from keyledger.domain.properties.models import Property
from keyledger.domain.resources.models import ResourceKind


class CredentialKind(StrEnum):
    """Which dialect can represent a credential completely."""

    RESERVATION = "reservation"  # a door PIN / RFID tag tied to a service order (Mews)
    VOUCHER = "voucher"  # a Wi-Fi voucher with a minutes budget (Nexudus)


class TokenType(StrEnum):
    PIN_CODE = "PinCode"
    RFID_TAG = "RfidTag"


class ActivityState(StrEnum):
    ACTIVE = "Active"
    DELETED = "Deleted"


@dataclass(frozen=True, slots=True)
class Permissions:
    bed: bool = False
    room: bool = False
    floor: bool = False
    building: bool = False


@dataclass(frozen=True, slots=True)
class PermissionChanges:
    """Each flag: ``None`` keeps it, a bool sets it."""

    bed: bool | None = None
    room: bool | None = None
    floor: bool | None = None
    building: bool | None = None

    def apply(self, current: Permissions) -> Permissions:
        return Permissions(
            bed=current.bed if self.bed is None else self.bed,
            room=current.room if self.room is None else self.room,
            floor=current.floor if self.floor is None else self.floor,
            building=current.building if self.building is None else self.building,
        )


@dataclass(frozen=True, slots=True)
class Credential:
    id: int
    uid: UUID
    property: Property
    kind: CredentialKind
    value: str
    token_type: TokenType | None
    service_order_id: UUID | None
    companionship_id: UUID | None
    resource_id: UUID | None
    serial_number: str | None
    valid_from: datetime | None
    valid_to: datetime | None
    permissions: Permissions
    description: str | None
    minutes_included: int | None
    minutes_left: int | None
    user_limit: int | None
    last_access: datetime | None
    system_id: str | None
    created_utc: datetime
    updated_utc: datetime
    created_by: str
    updated_by: str
    deleted_utc: datetime | None

    @classmethod
    def new_reservation(
        cls, *, prop: Property, draft: ReservationTokenDraft, actor_label: str, now: datetime
    ) -> Credential:
        """A new reservation token (a door PIN or RFID tag of a service order), not yet stored:
        its ``id`` stays 0 (never read back: a reservation token is addressed by its uid)."""
        return cls(
            id=0,
            uid=uuid.uuid4(),
            property=prop,
            kind=CredentialKind.RESERVATION,
            value=draft.value,
            token_type=draft.token_type,
            service_order_id=draft.service_order_id,
            companionship_id=draft.companionship_id,
            resource_id=draft.resource_id,
            serial_number=draft.serial_number,
            valid_from=draft.valid_from,
            valid_to=draft.valid_to,
            permissions=draft.permissions,
            description=None,
            minutes_included=None,
            minutes_left=None,
            user_limit=None,
            last_access=None,
            system_id=None,
            created_utc=now,
            updated_utc=now,
            created_by=actor_label,
            updated_by=actor_label,
            deleted_utc=None,
        )

    @classmethod
    def new_voucher(
        cls, *, prop: Property, fields: VoucherFields, actor_label: str, now: datetime
    ) -> Credential:
        """A new Wi-Fi voucher with its whole budget left, not yet stored (``id`` 0 until the
        insert reads its row id back)."""
        return cls(
            id=0,
            uid=uuid.uuid4(),
            property=prop,
            kind=CredentialKind.VOUCHER,
            value=fields.access_code,
            token_type=None,
            service_order_id=None,
            companionship_id=None,
            resource_id=None,
            serial_number=None,
            valid_from=fields.valid_from,
            valid_to=fields.valid_to,
            permissions=Permissions(),
            description=fields.description,
            minutes_included=fields.minutes_included,
            minutes_left=fields.minutes_included,
            user_limit=fields.user_limit,
            last_access=None,
            system_id=fields.system_id,
            created_utc=now,
            updated_utc=now,
            created_by=actor_label,
            updated_by=actor_label,
            deleted_utc=None,
        )

    @builtins.property
    def is_active(self) -> bool:
        """False exactly when the credential was deleted (expiry does not change it)."""
        return self.deleted_utc is None


@dataclass(frozen=True, slots=True)
class TimeInterval:
    """A filter interval: half-open ``[start, end)``; ``start == end`` means that very instant."""

    start: datetime
    end: datetime

    @property
    def is_instant(self) -> bool:
        return self.start == self.end


@dataclass(frozen=True, slots=True)
class ReservationTokenQuery:
    credential_ids: list[UUID] | None = None
    service_order_ids: list[UUID] | None = None
    colliding: TimeInterval | None = None
    updated: TimeInterval | None = None
    states: frozenset[ActivityState] = field(
        default_factory=lambda: frozenset({ActivityState.ACTIVE, ActivityState.DELETED})
    )
    enterprise_ids: list[UUID] | None = None
    count: int = 100
    cursor: UUID | None = None


@dataclass(frozen=True, slots=True)
class Page:
    """Newest first; ``cursor`` is the last (oldest) credential's uid, None on an empty page."""

    credentials: list[Credential]
    cursor: UUID | None


@dataclass(frozen=True, slots=True)
class ReservationTokenDraft:
    service_order_id: UUID
    token_type: TokenType
    value: str
    valid_from: datetime
    valid_to: datetime
    permissions: Permissions = Permissions()
    companionship_id: UUID | None = None
    resource_id: UUID | None = None
    serial_number: str | None = None


@dataclass(frozen=True, slots=True)
class ReservationTokenChange:
    """``None`` keeps a property as it is."""

    credential_id: UUID
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    value: str | None = None
    permissions: PermissionChanges = PermissionChanges()


class VoucherField(StrEnum):
    """Properties of a voucher that lists can be filtered and ordered by."""

    ID = "id"
    BUSINESS = "business"
    ACCESS_CODE = "access_code"
    DESCRIPTION = "description"
    LAST_ACCESS = "last_access"
    MINUTES_INCLUDED = "minutes_included"
    MINUTES_LEFT = "minutes_left"
    USER_LIMIT = "user_limit"
    VALID_FROM = "valid_from"
    VALID_TO = "valid_to"
    UNIQUE_ID = "unique_id"
    SYSTEM_ID = "system_id"
    CREATED = "created"
    UPDATED = "updated"
    UPDATED_BY = "updated_by"


@dataclass(frozen=True, slots=True)
class VoucherCondition:
    """One filter: a case-insensitive substring, one of some values, or an inclusive range."""

    field: VoucherField
    contains: str | None = None
    one_of: tuple[object, ...] | None = None
    at_least: object | None = None
    at_most: object | None = None


@dataclass(frozen=True, slots=True)
class VoucherQuery:
    conditions: tuple[VoucherCondition, ...] = ()
    order_by: VoucherField = VoucherField.ID
    descending: bool = False
    page: int = 1
    size: int = 25


@dataclass(frozen=True, slots=True)
class VoucherPage:
    vouchers: list[Credential]
    total: int


@dataclass(frozen=True, slots=True)
class VoucherFields:
    """Everything a client writes on a voucher; a replace sets all of them."""

    access_code: str
    minutes_included: int
    description: str | None = None
    valid_from: datetime | None = None
    valid_to: datetime | None = None
    user_limit: int | None = None
    system_id: str | None = None


def flag_for(kind: ResourceKind, permissions: Permissions) -> bool:
    """Whether ``permissions`` let a credential open a reader of ``kind`` (door checks and the
    collision rule both ask)."""
    return {
        ResourceKind.BUILDING: permissions.building,
        ResourceKind.FLOOR: permissions.floor,
        ResourceKind.ROOM: permissions.room,
        ResourceKind.BED: permissions.bed,
    }[kind]


#: The tracked fields of each credential kind, named as the API property the caller used: a kind
#: is written by exactly one dialect (``reservation``: Mews; ``voucher``: Nexudus), so the event of
#: an update names what its author sent (``ValidityEndUtc``, ``MinutesIncluded``), never a column
#: (``events.models.changed_fields``).
TRACKED_FIELDS: dict[CredentialKind, tuple[tuple[str, str], ...]] = {
    CredentialKind.RESERVATION: (
        ("value", "Value"),
        ("valid_from", "ValidityStartUtc"),
        ("valid_to", "ValidityEndUtc"),
        ("permissions", "Permissions"),
    ),
    CredentialKind.VOUCHER: (
        ("value", "AccessCode"),
        ("valid_from", "ValidFrom"),
        ("valid_to", "ValidTo"),
        ("description", "Description"),
        ("minutes_included", "MinutesIncluded"),
        ("minutes_left", "MinutesLeft"),
        ("user_limit", "UserLimit"),
        ("system_id", "SystemId"),
    ),
}
