"""Demo data (``keyledger serve --demo``): the seed documents' public example credentials and the
records of section 4 of the wire contract. Provisioned once per store: a mark in ``store_marks``
keeps a restart from bringing back what a client changed or deleted."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select, text

from keyledger.domain.callers import repository as callers
from keyledger.domain.callers.permissions import EVERY_PERMISSION, ordered
from keyledger.domain.callers.service import ACCESS_TOKEN_ROLES
from keyledger.domain.credentials import voucher_repository
from keyledger.domain.credentials.models import CredentialKind
from keyledger.domain.credentials.repository import insert_credentials
from keyledger.domain.nas.service import add_nas
from keyledger.domain.properties import repository as properties
from keyledger.domain.resources import repository as resources
from keyledger.domain.resources.models import Resource, ResourceDraft, ResourceKind
from keyledger.kit.clock import utc_now
from keyledger.kit.hashing import hash_password, secret_digest
from keyledger.store import Store
from keyledger.store.schema import credentials, store_marks

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


def _reservation_token(
    *,
    uid: str,
    service_order: str,
    token_type: str,
    value: str,
    valid_from: str,
    valid_to: str,
    created: str,
    room: bool = True,
    floor: bool = False,
    building: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "uid": UUID(uid),
        "kind": CredentialKind.RESERVATION.value,
        "value": value,
        "token_type": token_type,
        "service_order_id": UUID(service_order),
        "companionship_id": extra.get("companionship_id"),
        "resource_id": extra.get("resource_id"),
        "serial_number": extra.get("serial_number"),
        "valid_from": _at(valid_from),
        "valid_to": _at(valid_to),
        "perm_bed": False,
        "perm_room": room,
        "perm_floor": floor,
        "perm_building": building,
        "created_utc": _at(created),
        "updated_utc": _at(created),
        "created_by": "System",
        "updated_by": "System",
    }


RESERVATION_TOKENS = [
    _reservation_token(
        uid="90eff5aa-36b4-4689-80c0-ab3a00bb412e",
        service_order="65eff5aa-36b4-4689-80c0-ab3a00bb412e",
        token_type="RfidTag",
        value="04A224B2C15E80",
        serial_number="CARD-0001",
        valid_from="2020-02-14T14:00:00",
        valid_to="2020-02-18T10:00:00",
        created="2020-01-06T09:00:00",
        floor=True,
        building=True,
    ),
    _reservation_token(
        uid="e7f26210-10e7-462e-9da8-ae8300be8ab7",
        service_order="65eff5aa-36b4-4689-80c0-ab3a00bb412e",
        token_type="PinCode",
        value="8520#",
        valid_from="2020-02-14T14:00:00",
        valid_to="2020-02-18T10:00:00",
        created="2020-01-07T09:00:00",
    ),
    _reservation_token(
        uid="35d4b117-4e60-44a3-9580-c582117eff98",
        service_order="35d4b117-4e60-44a3-9580-c582117eff98",
        token_type="PinCode",
        value="4711#",
        companionship_id=UUID("25d4b117-4e60-44a3-9580-c582117eff98"),
        resource_id=UUID("65d4b117-4e60-44a3-9580-c582117eff98"),
        valid_from="2020-10-08T22:00:00",
        valid_to="2020-10-09T22:00:00",
        created="2020-10-01T11:48:57",
    ),
]

SYSTEM_ID = "{ metadata: { id: 887766, processed: true } }"


def _voucher(row_id: int, code: str, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": row_id,
        "uid": extra.get("uid") or UUID(int=row_id, version=4),
        "kind": CredentialKind.VOUCHER.value,
        "value": code,
        "description": extra.get("description"),
        "minutes_included": minutes,
        "minutes_left": minutes,
        "user_limit": extra.get("user_limit"),
        "system_id": extra.get("system_id"),
        "created_utc": _at("2018-07-03T06:23:01"),
        "updated_utc": _at("2020-01-01T21:57:21"),
        "created_by": "System",
        "updated_by": "System",
    }


VOUCHERS = [
    _voucher(
        1234567,
        "00001",
        600,
        description="Description",
        user_limit=2,
        uid=UUID("d0d0c98d-f01b-4869-9e48-1db584428e9b"),
        system_id=SYSTEM_ID,
    ),
    _voucher(9876541, "00002", 120),
    _voucher(12345678, "00003", 60),
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
    """The demo records, then the demo building (each once per store)."""
    created = _provision_records(store)
    _provision_building(store)
    _provision_nas(store)
    return created


def _provision_nas(store: Store) -> None:
    """The demo NAS (``radclient`` at 127.0.0.1, secret testing123) for the demo hotel's
    business, once per store."""
    with store.read() as conn:
        mark = select(store_marks.c.name).where(store_marks.c.name == NAS_MARK)
        done = conn.execute(mark).first()
        hotel = properties.by_enterprise_ids(conn, [HOTEL])
    if done or not hotel:
        return
    add_nas(
        store,
        business_id=hotel[0].business_id,
        address=NAS_ADDRESS,
        secret=NAS_SECRET,
        name="Demo hotspot",
    )
    with store.write() as conn:
        conn.execute(insert(store_marks), {"name": NAS_MARK, "created_utc": utc_now()})


def _provision_building(store: Store) -> None:
    """The demo building, written directly (parents first): demo data is not an event, so it
    bypasses the resource service, which records every save (docs/access.md, "Events")."""
    with store.write() as conn:
        done = conn.execute(
            select(store_marks.c.name).where(store_marks.c.name == RESOURCES_MARK)
        ).first()
        hotel = properties.by_enterprise_ids(conn, [HOTEL])
        if done or not hotel:
            return
        now = utc_now()
        for draft in DEMO_BUILDING:
            resources.upsert(
                conn,
                Resource(hotel[0].id, draft.uid, draft.parent_uid, draft.kind, draft.name),
                now=now,
            )
        conn.execute(insert(store_marks), {"name": RESOURCES_MARK, "created_utc": now})


def _provision_records(store: Store) -> bool:
    """Create the demo records unless this store has had them once. True when it created them."""
    password_hash = hash_password(USER_PASSWORD)
    with store.write() as conn:
        if conn.execute(select(store_marks.c.name).where(store_marks.c.name == MARK)).first():
            return False
        now = utc_now()
        hotel = _property(conn, HOTEL, HOTEL_BUSINESS, "Keyledger Demo Hotel", now)
        second = _property(conn, SECOND_HOTEL, SECOND_HOTEL_BUSINESS, "Keyledger Demo Annex", now)
        integration = callers.integration_by_digest(conn, secret_digest(CLIENT_TOKEN))
        integration_id = (
            int(integration.id)
            if integration is not None
            else callers.insert_integration(
                conn, name="Sample Client", digest=secret_digest(CLIENT_TOKEN), now=now
            )
        )
        if callers.connection_by_digest(conn, secret_digest(ACCESS_TOKEN)) is None:
            callers.insert_connection(
                conn,
                integration_id=integration_id,
                digest=secret_digest(ACCESS_TOKEN),
                property_ids=[hotel, second],
                scopes=ordered(EVERY_PERMISSION),
                now=now,
            )
        if callers.user_id_by_email(conn, USER_EMAIL) is None:
            user_id = callers.insert_user(
                conn, email=USER_EMAIL, password_hash=password_hash, now=now
            )
            callers.insert_memberships(
                conn, user_id=user_id, property_ids=[hotel], roles=ACCESS_TOKEN_ROLES
            )
        wanted = [*RESERVATION_TOKENS, *VOUCHERS]
        present = set(
            conn.execute(
                select(credentials.c.uid).where(credentials.c.uid.in_([r["uid"] for r in wanted]))
            ).scalars()
        )
        rows = [
            {**row, "property_id": hotel, **_value_columns(store, row)}
            for row in wanted
            if row["uid"] not in present
        ]
        if rows:
            _insert_defaults(conn, rows)
        conn.execute(insert(store_marks), {"name": MARK, "created_utc": now})
    return True


def _property(
    conn: Connection, enterprise_id: UUID, business_id: int, name: str, now: datetime
) -> int:
    found = properties.by_enterprise_ids(conn, [enterprise_id])
    if found:
        return found[0].id
    if properties.by_business_id(conn, business_id) is not None:
        business_id = properties.next_business_id(conn)
    return properties.insert_property(
        conn,
        enterprise_id=enterprise_id,
        business_id=business_id,
        name=name,
        timezone="Europe/London",
        now=now,
    ).id


def _value_columns(store: Store, row: dict[str, Any]) -> dict[str, Any]:
    if row["kind"] == CredentialKind.RESERVATION.value:
        return store.sealer.columns(row["uid"], row["value"])
    return voucher_repository.key_columns(row["value"], row.get("description"))


def _insert_defaults(conn: Connection, rows: list[dict[str, Any]]) -> None:
    columns = [column.name for column in credentials.columns]
    defaults: dict[str, Any] = dict.fromkeys(columns)
    defaults.update(
        perm_bed=False, perm_room=False, perm_floor=False, perm_building=False, usage_seconds=0
    )
    with_ids = [{**defaults, **row} for row in rows if "id" in row]
    without_ids = [
        {k: v for k, v in {**defaults, **row}.items() if k != "id"}
        for row in rows
        if "id" not in row
    ]
    if without_ids:
        insert_credentials(conn, without_ids)
    if with_ids:
        conn.execute(insert(credentials), with_ids)
        if conn.dialect.name == "postgresql":
            conn.execute(
                text(
                    "SELECT setval(pg_get_serial_sequence('credentials', 'id'), "
                    "(SELECT max(id) FROM credentials))"
                )
            )
