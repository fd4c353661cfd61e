"""Door credential values sealed at rest (KEYLEDGER_ENCRYPTION_KEY), found by keyed fingerprints,
and rewritten under a new key (or in clear) by ``keyledger admin rotate-key``; on both databases.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text, update

from keyledger.domain.credentials import rekeying
from keyledger.domain.credentials.models import ReservationTokenChange, ReservationTokenQuery
from keyledger.domain.credentials.reservations import (
    list_reservation_tokens,
    update_reservation_tokens,
)
from keyledger.domain.events.models import Actor
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.kit.sealing import UnreadableValue, ValueSealer, new_key, parse_keys
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import downgrade, is_current, upgrade
from keyledger.store.schema import credentials
from tests.support import (
    DatabaseFactory,
    Deployment,
    Tenant,
    add_pins,
    building,
    check,
    deploy,
    dump_database,
    get_all,
    make_tenant,
    settings_for,
    token,
    token_parameters,
)

KEY_1, KEY_2 = new_key(), new_key()
PIN, NEW_PIN, RFID = "73910584#", "58204719#", "04A1B2C3D4E5F6"


def _values(tenant: Tenant, ids: list[str]) -> dict[str, str]:
    return {t["Id"]: t["Value"] for t in get_all(tenant, ResourceAccessTokenIds=ids)}


def _served(url: str, key: str | None, tenant: Tenant, ids: dict[str, str]) -> dict[str, str]:
    """The values getAll answers for ``ids`` from a server started with ``key``."""
    deployment = deploy(url, encryption_key=key)
    try:
        return _values(replace(tenant, http=deployment.http), list(ids))
    finally:
        deployment.close()


def _rotate(url: str, key: str | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYLEDGER_DATABASE_URL": url}
    env.pop("KEYLEDGER_ENCRYPTION_KEY", None)
    if key is not None:
        env["KEYLEDGER_ENCRYPTION_KEY"] = key
    return subprocess.run(
        [sys.executable, "-m", "keyledger", "admin", "rotate-key", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _rotated(url: str, key: str | None, *args: str) -> dict[str, Any]:
    done = _rotate(url, key, *args)
    assert done.returncode == 0, done.stderr
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


def _key_id(key: str) -> str | None:
    return ValueSealer(parse_keys(key)).primary_key_id


def test_sealed_values_are_absent_from_a_dump_and_work_through_every_api(
    databases: DatabaseFactory,
) -> None:
    url = databases.new_url()
    deployment = deploy(url, encryption_key=KEY_1)
    try:
        tenant = make_tenant(deployment)
        tree = building(tenant)
        pin = token(tenant, PIN, tree["room"], room=True)
        rfid = token(tenant, RFID, tree["room"], token_type="RfidTag", room=True)
        assert _values(tenant, [pin, rfid]) == {pin: PIN, rfid: RFID}
        granted = check(tenant, tree["room"], PIN)
        assert (granted["Reason"], granted["CredentialId"]) == ("Granted", pin)
        assert check(tenant, tree["room"], RFID, token_type="RfidTag")["CredentialId"] == rfid
        # The collision rule finds the sealed value by its fingerprint.
        clash = tenant.mews(
            "add",
            ResourceAccessTokenParameters=[
                token_parameters(
                    value=PIN,
                    start="2030-01-02T00:00:00Z",
                    end="2030-01-03T00:00:00Z",
                    ResourceId=str(tree["room"]),
                )
            ],
        )
        assert clash.status_code == 403, clash.text
        assert "collides with token" in clash.json()["Message"]
        changed = tenant.mews(
            "update",
            ResourceAccessTokenUpdates=[
                {"ResourceAccessTokenId": pin, "Value": {"Value": NEW_PIN}}
            ],
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["ResourceAccessTokens"][0]["Value"] == NEW_PIN
        assert _values(tenant, [pin, rfid]) == {pin: NEW_PIN, rfid: RFID}
        assert check(tenant, tree["room"], NEW_PIN)["Reason"] == "Granted"
        assert check(tenant, tree["room"], PIN)["Reason"] == "UnknownCredential"
        with deployment.store.read() as conn:
            stored = conn.execute(
                select(credentials.c.value, credentials.c.value_sealed, credentials.c.value_fp)
            ).all()
    finally:
        deployment.close()
    assert [row[0] for row in stored] == ["", ""]
    assert all(row[1] is not None for row in stored)
    keyless = ValueSealer()
    assert {bytes(row[2]) for row in stored}.isdisjoint(
        {keyless.fingerprint(v) for v in (PIN, NEW_PIN, RFID)}
    ), "the fingerprint must be keyed"
    dump = dump_database(url)
    assert "credentials" in dump
    for value in (PIN, NEW_PIN, RFID, PIN.rstrip("#"), NEW_PIN.rstrip("#")):
        assert value not in dump, f"{value} is stored in clear"
        assert value.lower() not in dump.lower(), f"{value} is stored in clear (case)"


def _clear_store(url: str) -> tuple[Deployment, Tenant, dict[str, str]]:
    """A server without a key and two door tokens written in clear."""
    deployment = deploy(url, encryption_key=None)
    tenant = make_tenant(deployment)
    made = [
        token(tenant, value, None, token_type=kind, room=True)
        for value, kind in ((PIN, "PinCode"), (RFID, "RfidTag"))
    ]
    return deployment, tenant, dict(zip(made, (PIN, RFID), strict=True))


def test_rotate_key_seals_clear_values_then_moves_them_to_a_new_key(
    databases: DatabaseFactory,
) -> None:
    url = databases.new_url()
    deployment, tenant, expected = _clear_store(url)
    deployment.close()
    assert _rotated(url, None, "--decrypt")["Rewritten"] == 0  # already in clear
    refused = _rotate(url, None)
    assert refused.returncode == 2
    assert "KEYLEDGER_ENCRYPTION_KEY is not set" in refused.stderr

    first = _rotated(url, KEY_1, "--vacuum")
    assert first == {
        "KeyId": _key_id(KEY_1),
        "Examined": 2,
        "Rewritten": 2,
        "ChangedMeanwhile": 0,
        "SealedWith": {_key_id(KEY_1): 2},
        "Vacuumed": True,
    }
    dump = dump_database(url)
    assert PIN not in dump
    assert RFID not in dump
    assert _rotated(url, KEY_1)["Rewritten"] == 0  # a second run has nothing to do

    # Servers know both keys while the rotation runs; afterwards the new key alone opens all.
    both = f"{KEY_2}, {KEY_1}"
    assert _served(url, both, tenant, expected) == expected
    second = _rotated(url, both)
    assert (second["Rewritten"], second["SealedWith"]) == (2, {_key_id(KEY_2): 2})

    assert _served(url, KEY_2, tenant, expected) == expected

    # The retired key alone opens nothing: a clear error, no value, no internals.
    deployment = deploy(url, encryption_key=KEY_1)
    try:
        stale = replace(tenant, http=deployment.http)
        failed = stale.mews(
            "getAll", ResourceAccessTokenIds=list(expected), Limitation={"Count": 10}
        )
        assert failed.status_code == 500
        assert failed.json()["Message"] == "An unexpected error occurred; it has been logged."
        assert "Traceback" not in failed.text
        assert str(_key_id(KEY_2)) not in failed.text
    finally:
        deployment.close()
    refused = _rotate(url, KEY_1)
    assert refused.returncode == 2
    assert f"sealed with key(s) {_key_id(KEY_2)}" in refused.stderr
    assert "Nothing was changed" in refused.stderr

    # And back to clear.
    back = _rotated(url, KEY_2, "--decrypt")
    assert (back["KeyId"], back["Rewritten"], back["SealedWith"]) == (None, 2, {})
    assert _served(url, None, tenant, expected) == expected


def _store(url: str, key: str | None) -> Store:
    return Store(settings_for(url, encryption_key=key))


def test_rekeying_never_puts_back_a_value_a_client_changed_meanwhile(
    databases: DatabaseFactory,
) -> None:
    url = databases.new_url()
    old = _store(url, None)
    prop = add_property(old, name="Rekeying")
    scope = Scope((prop,))
    window = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))
    first, second = add_pins(old, scope, [window, window])
    old.dispose()
    store = _store(url, KEY_1)
    try:
        rows = rekeying.read_batch(store, after=0, size=10)
        work = rekeying.plan(rows, current=store.sealer, target=store.sealer)
        assert len(work) == 2
        # A client changes the first token's value between the rotation's read and write.
        update_reservation_tokens(
            store,
            scope=scope,
            actor=Actor.system(),
            changes=[ReservationTokenChange(credential_id=first.uid, value=NEW_PIN)],
        )
        assert rekeying.apply(store, work) == 1
        page = list_reservation_tokens(store, scope=scope, query=ReservationTokenQuery(count=10))
        assert {c.uid: c.value for c in page.credentials} == {
            first.uid: NEW_PIN,
            second.uid: second.value,
        }
        assert rekeying.sealed_key_ids(store) == {_key_id(KEY_1): 2}
    finally:
        store.dispose()


def test_a_sealed_value_moved_to_another_row_does_not_open(databases: DatabaseFactory) -> None:
    url = databases.new_url()
    store = _store(url, KEY_1)
    try:
        prop = add_property(store, name="Tamper")
        scope = Scope((prop,))
        window = (datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 2, tzinfo=UTC))
        first, second = add_pins(store, scope, [window, window])
        with store.write() as conn:
            sealed = conn.execute(
                select(credentials.c.value_sealed).where(credentials.c.uid == first.uid)
            ).scalar_one()
            conn.execute(
                update(credentials)
                .where(credentials.c.uid == second.uid)
                .values(value_sealed=sealed)
            )
        with pytest.raises(UnreadableValue, match=f"credential {second.uid}: .*fails auth"):
            list_reservation_tokens(store, scope=scope, query=ReservationTokenQuery(count=10))
    finally:
        store.dispose()


def test_a_bad_key_is_refused_without_showing_it() -> None:
    secret = "not-a-key-but-a-secret-nonetheless"
    with pytest.raises(ValueError, match="key 2 is not 32 bytes") as refused:
        Settings(database_url="sqlite://", encryption_key=f"{KEY_1},{secret}")
    assert secret not in str(refused.value)
    assert KEY_1 not in str(refused.value)
    env = {**os.environ, "KEYLEDGER_ENCRYPTION_KEY": secret}
    done = subprocess.run(
        [sys.executable, "-m", "keyledger", "admin", "list-properties"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "invalid configuration: KEYLEDGER_ENCRYPTION_KEY: Value error, key 1 is not 32" in (
        done.stderr
    )
    assert secret not in done.stderr + done.stdout


def test_a_store_from_before_fingerprints_is_upgraded_and_checks_doors(
    databases: DatabaseFactory,
) -> None:
    """Migration 0007 fingerprints the values already stored (in clear)."""
    url = databases.new_url()
    deployment, tenant, expected = _clear_store(url)
    pin = next(uid for uid, value in expected.items() if value == PIN)
    try:
        downgrade(deployment.store.engine, "0007")  # the later migrations, undone by their own
        with deployment.store.write() as conn:
            conn.execute(update(credentials).values(value_fp=None))
            conn.execute(text("UPDATE alembic_version SET version_num = '0006'"))
            if conn.dialect.name == "sqlite":  # as 0002 once did: door values in the index too
                conn.execute(
                    text("INSERT INTO credential_search(credential_search) VALUES ('rebuild')")
                )
            conn.execute(text("DROP INDEX ix_reservations_value_fp"))
            conn.execute(text("ALTER TABLE credentials DROP COLUMN value_fp"))
            conn.execute(text("ALTER TABLE credentials DROP COLUMN value_sealed"))
            conn.execute(
                text(
                    "CREATE INDEX ix_reservations_value ON credentials (property_id, value) "
                    "WHERE kind = 'reservation'"
                )
            )
    finally:
        deployment.close()
    deployment = deploy(url, encryption_key=None)
    try:
        upgrade(deployment.store.engine)
        assert is_current(deployment.store.engine)
        if deployment.store.dialect == "sqlite":
            with deployment.store.read() as conn:
                indexed = conn.execute(text("SELECT count(*) FROM credential_search_docsize"))
                assert indexed.scalar_one() == 0  # vouchers only, and there are none
        again = replace(tenant, http=deployment.http)
        tree = building(again)
        room_pin = token(again, "61730942#", tree["room"], room=True)
        assert check(again, tree["room"], "61730942#")["CredentialId"] == room_pin
        assert _values(again, [*expected, room_pin]) == {**expected, room_pin: "61730942#"}
        clash = again.mews("add", ResourceAccessTokenParameters=[token_parameters(value=PIN)])
        assert clash.status_code == 403, clash.text
        assert f"collides with token {pin}" in clash.json()["Message"]
    finally:
        deployment.close()
