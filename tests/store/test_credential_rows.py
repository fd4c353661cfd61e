"""The credentials row contract (domain/credentials/repository.py): a credential with every field
set, written with ``row_of``, reads back equal through every reader that selects
``CREDENTIAL_COLUMNS`` (the kind repositories, the shared look-ups and the door check's view).
A column inserted or moved in ``CREDENTIAL_COLUMNS`` without its reader following fails here."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from keyledger.domain.access import repository as access_repository
from keyledger.domain.credentials import (
    repository,
    reservation_repository,
    voucher_repository,
)
from keyledger.domain.credentials.models import (
    Credential,
    CredentialKind,
    Permissions,
    ReservationTokenQuery,
    TokenType,
    VoucherQuery,
)
from keyledger.domain.properties.models import Property
from keyledger.domain.properties.service import add_property
from keyledger.domain.resources import repository as resources_repository
from keyledger.domain.resources.models import Resource, ResourceKind
from keyledger.kit.sealing import new_key
from keyledger.kit.settings import Settings
from keyledger.store import Store
from tests.support import DatabaseFactory

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["clear", "sealed"])
def store(request: pytest.FixtureRequest, sqlite_databases: DatabaseFactory) -> Iterator[Store]:
    """A fresh SQLite store, door values in clear or sealed (KEYLEDGER_ENCRYPTION_KEY)."""
    key = new_key() if request.param == "sealed" else None
    opened = Store(Settings(database_url=sqlite_databases.new_url(), encryption_key=key))
    assert (opened.sealer.primary_key_id is not None) == (key is not None)
    yield opened
    opened.dispose()


def _every_field(prop: Property, kind: CredentialKind, *, deleted: bool) -> Credential:
    """A credential whose every field holds a value of its own (none left at a default), so a
    reader that takes one column for another cannot read it back equal."""
    n = 1 if kind is CredentialKind.RESERVATION else 2
    return Credential(
        id=0,
        uid=uuid.uuid4(),
        property=prop,
        kind=kind,
        value=f"7391058{n}#",
        token_type=TokenType.RFID_TAG if kind is CredentialKind.RESERVATION else None,
        service_order_id=uuid.uuid4(),
        companionship_id=uuid.uuid4(),
        resource_id=uuid.uuid4(),
        serial_number=f"serial-{n}",
        valid_from=START + timedelta(minutes=1),
        valid_to=START + timedelta(days=2, minutes=3),
        permissions=Permissions(bed=True, room=False, floor=True, building=False),
        description=f"description {n}",
        minutes_included=120 + n,
        minutes_left=45 + n,
        user_limit=3 + n,
        last_access=START + timedelta(hours=4),
        system_id=f"system-{n}",
        created_utc=START + timedelta(seconds=5),
        updated_utc=START + timedelta(seconds=6),
        created_by=f"creator {n}",
        updated_by=f"updater {n}",
        deleted_utc=START + timedelta(seconds=7) if deleted else None,
    )


def _written(store: Store, credential: Credential) -> Credential:
    with store.write() as conn:
        (row_id,) = repository.insert_credentials(
            conn, [repository.row_of(credential, store.sealer)]
        )
    return replace(credential, id=row_id)


@pytest.mark.parametrize("deleted", [False, True], ids=["live", "deleted"])
def test_a_reservation_token_reads_back_whole_through_every_reader(
    store: Store, deleted: bool
) -> None:
    prop = add_property(store, name="Rows")
    properties = {prop.id: prop}
    token = _written(store, _every_field(prop, CredentialKind.RESERVATION, deleted=deleted))
    reader = Resource(
        property_id=prop.id, uid=uuid.uuid4(), parent_uid=None, kind=ResourceKind.ROOM, name="R"
    )
    with store.write() as conn:
        resources_repository.upsert(conn, reader, now=START)
    sealer = store.sealer
    with store.read() as conn:
        reads = {
            "by_uids": repository.by_uids(
                conn,
                properties=properties,
                kind=CredentialKind.RESERVATION,
                uids=[token.uid],
                sealer=sealer,
            ).get(token.uid),
            "select_reservation_page": reservation_repository.select_reservation_page(
                conn,
                properties=properties,
                query=ReservationTokenQuery(),
                after=None,
                sealer=sealer,
            ),
            "reservation_tokens_with_values": reservation_repository.reservation_tokens_with_values(
                conn,
                properties=properties,
                property_id=prop.id,
                values=[token.value],
                sealer=sealer,
            ),
            "door_view": [
                candidate
                for view in access_repository.door_view(
                    conn,
                    properties=properties,
                    property_ids=[prop.id],
                    reader_uid=reader.uid,
                    token_type=TokenType.RFID_TAG.value,
                    value=token.value,
                    since=START,
                    sealer=sealer,
                )
                for candidate, _reached in view.candidates
            ],
        }
        if not deleted:
            reads["active_reservation_tokens_at"] = (
                reservation_repository.active_reservation_tokens_at(
                    conn,
                    properties=properties,
                    property_id=prop.id,
                    resource_ids=[token.resource_id],  # type: ignore[list-item]
                    sealer=sealer,
                )
            )
    for reader_name, read in reads.items():
        found = read if isinstance(read, list) else [read]
        assert found == [token], reader_name


def test_a_voucher_reads_back_whole_through_every_reader(store: Store) -> None:
    prop = add_property(store, name="Rows")
    properties = {prop.id: prop}
    voucher = _written(store, _every_field(prop, CredentialKind.VOUCHER, deleted=False))
    with store.read() as conn:
        reads = {
            "by_uids": [
                repository.by_uids(
                    conn, properties=properties, kind=CredentialKind.VOUCHER, uids=[voucher.uid]
                ).get(voucher.uid)
            ],
            "select_voucher_page": voucher_repository.select_voucher_page(
                conn, properties=properties, query=VoucherQuery()
            )[0],
            "live_vouchers": list(
                voucher_repository.live_vouchers(
                    conn, properties=properties, ids=[voucher.id]
                ).values()
            ),
        }
    for reader_name, found in reads.items():
        assert found == [voucher], reader_name


def test_to_credential_reads_columns_by_name_not_by_place() -> None:
    """Every column ``to_credential`` reads is one of ``CREDENTIAL_COLUMNS``, each read once."""
    read = repository._READ
    assert sorted(read) == sorted(column.name for column in repository.CREDENTIAL_COLUMNS)
