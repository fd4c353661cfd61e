"""Demo data (``keyledger serve --demo``): the seed documents' public example credentials and the
records of section 4 of the wire contract. Provisioned once per store: a mark in ``store_marks``
keeps a restart from bringing back what a client changed or deleted.

The records go in through the domain (``credentials.reservations.import_credentials``,
``resources.service.import_resources``, the caller and property repositories), with the ids and
times the seed documents show, and without events: demo data is not something anyone did, so a
fresh demo's event log is empty (docs/access.md, "Events")."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from uuid import UUID

from keyledger.domain.callers.integrations import import_integration
from keyledger.domain.callers.permissions import EVERY_PERMISSION
from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, import_user
from keyledger.domain.credentials.models import (
    Credential,
    Permissions,
    ReservationTokenDraft,
    TokenType,
    VoucherFields,
)
from keyledger.domain.credentials.reservations import import_credentials
from keyledger.domain.nas.service import import_nas
from keyledger.domain.properties.models import Property
from keyledger.domain.properties.service import find_property, import_property
from keyledger.domain.resources.models import ResourceDraft, ResourceKind
from keyledger.domain.resources.service import import_resources
from keyledger.kit.clock import utc_now
from keyledger.kit.hashing import hash_password
from keyledger.store import Store
from keyledger.store.marks import has_mark, set_mark

MARK = "demo-provisioned"
CLIENT_TOKEN = "E0D439EE522F44368DC78E1BFB03710C-D24FB11DBE31D4621C4817E028D9E1D"
ACCESS_TOKEN = "C66EF7B239D24632943D115EDE9CB810-EA00F8FD8294692C940F6B5A8F9453D"
HOTEL = UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")
HOTEL_BUSINESS = 12345678
SECOND_HOTEL = UUID("4d0201db-36f5-428b-8d11-4f0a65e960cc")
SECOND_HOTEL_BUSINESS = 87654321
USER_EMAIL = "example@nexudus.com"
USER_PASSWORD = "Example1234"


def _at(text_value: str) -> datetime:
    return datetime.fromisoformat(text_value).replace(tzinfo=UTC)


ROOM = Permissions(room=True)


@dataclass(frozen=True)
class DemoToken:
    """A reservation token of the seed examples (room flag only unless told)."""

    uid: str
    service_order: str
    token_type: TokenType
    value: str
    valid_from: str
    valid_to: str
    created: str
    permissions: Permissions = ROOM
    companionship_id: UUID | None = None
    resource_id: UUID | None = None
    serial_number: str | None = None

    def credential(self, hotel: Property) -> Credential:
        """The seed's token: a new reservation token with the seed's uid."""
        token = Credential.new_reservation(
            prop=hotel,
            draft=ReservationTokenDraft(
                service_order_id=UUID(self.service_order),
                token_type=self.token_type,
                value=self.value,
                valid_from=_at(self.valid_from),
                valid_to=_at(self.valid_to),
                permissions=self.permissions,
                companionship_id=self.companionship_id,
                resource_id=self.resource_id,
                serial_number=self.serial_number,
            ),
            actor_label="System",
            now=_at(self.created),
        )
        return replace(token, uid=UUID(self.uid))


RESERVATION_TOKENS = [
    DemoToken(
        uid="90eff5aa-36b4-4689-80c0-ab3a00bb412e",
        service_order="65eff5aa-36b4-4689-80c0-ab3a00bb412e",
        token_type=TokenType.RFID_TAG,
        value="04A224B2C15E80",
        serial_number="CARD-0001",
        valid_from="2020-02-14T14:00:00",
        valid_to="2020-02-18T10:00:00",
        created="2020-01-06T09:00:00",
        permissions=Permissions(room=True, floor=True, building=True),
    ),
    DemoToken(
        uid="e7f26210-10e7-462e-9da8-ae8300be8ab7",
        service_order="65eff5aa-36b4-4689-80c0-ab3a00bb412e",
        token_type=TokenType.PIN_CODE,
        value="8520#",
        valid_from="2020-02-14T14:00:00",
        valid_to="2020-02-18T10:00:00",
        created="2020-01-07T09:00:00",
    ),
    DemoToken(
        uid="35d4b117-4e60-44a3-9580-c582117eff98",
        service_order="35d4b117-4e60-44a3-9580-c582117eff98",
        token_type=TokenType.PIN_CODE,
        value="4711#",
        companionship_id=UUID("25d4b117-4e60-44a3-9580-c582117eff98"),
        resource_id=UUID("65d4b117-4e60-44a3-9580-c582117eff98"),
        valid_from="2020-10-08T22:00:00",
        valid_to="2020-10-09T22:00:00",
        created="2020-10-01T11:48:57",
    ),
]

SYSTEM_ID = "{ metadata: { id: 887766, processed: true } }"


@dataclass(frozen=True)
class DemoVoucher:
    """A voucher of the Nexudus seed examples, with the row id they show."""

    row_id: int
    code: str
    minutes: int
    description: str | None = None
    user_limit: int | None = None
    uid: UUID | None = None
    system_id: str | None = None

    def credential(self, hotel: Property) -> Credential:
        """The seed's voucher: a new voucher with the seed's row id, uid and update time."""
        voucher = Credential.new_voucher(
            prop=hotel,
            fields=VoucherFields(
                access_code=self.code,
                minutes_included=self.minutes,
                description=self.description,
                user_limit=self.user_limit,
                system_id=self.system_id,
            ),
            actor_label="System",
            now=_at("2018-07-03T06:23:01"),
        )
        return replace(
            voucher,
            id=self.row_id,
            uid=self.uid or UUID(int=self.row_id, version=4),
            updated_utc=_at("2020-01-01T21:57:21"),
        )


VOUCHERS = [
    DemoVoucher(
        1234567,
        "00001",
        600,
        description="Description",
        user_limit=2,
        uid=UUID("d0d0c98d-f01b-4869-9e48-1db584428e9b"),
        system_id=SYSTEM_ID,
    ),
    DemoVoucher(9876541, "00002", 120),
    DemoVoucher(12345678, "00003", 60),
]


BUILDING = UUID("b0000000-0000-4000-8000-000000000001")
FLOOR_1 = UUID("f0000000-0000-4000-8000-000000000001")
ROOM_101 = UUID("65d4b117-4e60-44a3-9580-c582117eff98")  # the ResourceId of seed 001's examples
ROOM_102 = UUID("a0000000-0000-4000-8000-000000000102")
BED_101A = UUID("bed00000-0000-4000-8000-00000000101a")
RESOURCES_MARK = "demo-resources-provisioned"
NAS_MARK = "demo-nas-provisioned"
#: The demo hotspot: radclient on this machine, with FreeRADIUS's customary test secret.
NAS_ADDRESS = "127.0.0.1"
NAS_SECRET = "testing123"
DEMO_BUILDING = [
    ResourceDraft(BUILDING, None, ResourceKind.BUILDING, "Main building"),
    ResourceDraft(FLOOR_1, BUILDING, ResourceKind.FLOOR, "Floor 1"),
    ResourceDraft(ROOM_101, FLOOR_1, ResourceKind.ROOM, "Room 101"),
    ResourceDraft(ROOM_102, FLOOR_1, ResourceKind.ROOM, "Room 102"),
    ResourceDraft(BED_101A, ROOM_101, ResourceKind.BED, "Bed 101-A"),
]


def provision_demo(store: Store) -> bool:
    """The demo records, then the demo building and the demo NAS (each once per store)."""
    created = _provision_records(store)
    _provision_building(store)
    _provision_nas(store)
    return created


def _provision_nas(store: Store) -> None:
    """The demo NAS (``radclient`` at 127.0.0.1, secret testing123) for the demo hotel's
    business (an event-less import, as every demo record)."""
    with store.write() as conn:
        hotel = find_property(conn, HOTEL)
        if has_mark(conn, NAS_MARK) or hotel is None:
            return
        import_nas(
            conn,
            store.sealer,
            business_id=hotel.business_id,
            address=NAS_ADDRESS,
            secret=NAS_SECRET,
            name="Demo hotspot",
        )
        set_mark(conn, NAS_MARK, now=utc_now())


def _provision_building(store: Store) -> None:
    """The demo building (an event-less import, as every demo record)."""
    with store.write() as conn:
        hotel = find_property(conn, HOTEL)
        if has_mark(conn, RESOURCES_MARK) or hotel is None:
            return
        now = utc_now()
        import_resources(conn, prop=hotel, drafts=DEMO_BUILDING, now=now)
        set_mark(conn, RESOURCES_MARK, now=now)


def _provision_records(store: Store) -> bool:
    """Create the demo records unless this store has had them once. True when it created them."""
    password_hash = hash_password(USER_PASSWORD)
    with store.write() as conn:
        if has_mark(conn, MARK):
            return False
        now = utc_now()
        hotel = import_property(
            conn,
            enterprise_id=HOTEL,
            business_id=HOTEL_BUSINESS,
            name="Keyledger Demo Hotel",
            timezone="Europe/London",
            now=now,
        )
        second = import_property(
            conn,
            enterprise_id=SECOND_HOTEL,
            business_id=SECOND_HOTEL_BUSINESS,
            name="Keyledger Demo Annex",
            timezone="Europe/London",
            now=now,
        )
        import_integration(
            conn,
            name="Sample Client",
            client_token=CLIENT_TOKEN,
            access_token=ACCESS_TOKEN,
            property_ids=[hotel.id, second.id],
            permissions=list(EVERY_PERMISSION),
            now=now,
        )
        import_user(
            conn,
            email=USER_EMAIL,
            password_hash=password_hash,
            property_ids=[hotel.id],
            roles=ACCESS_TOKEN_ROLES,
            now=now,
        )
        import_credentials(
            conn,
            [
                *(token.credential(hotel) for token in RESERVATION_TOKENS),
                *(voucher.credential(hotel) for voucher in VOUCHERS),
            ],
            store.sealer,
        )
        set_mark(conn, MARK, now=now)
    return True
