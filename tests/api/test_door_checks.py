"""Door checks: every reason with real values, the resource-tree cases, reader lock-out."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from keyledger.domain.callers.integrations import add_access_token
from keyledger.store.schema import events
from tests.support import (
    DatabaseFactory,
    Deployment,
    Tenant,
    building,
    check,
    deploy,
    make_tenant,
    token,
    v1,
)


def reasons(tenant: Tenant, value: str, *readers: uuid.UUID, **kwargs: Any) -> list[str]:
    return [check(tenant, reader, value, **kwargs)["Reason"] for reader in readers]


def test_a_room_token_opens_its_room_only(tenant: Tenant) -> None:
    tree = building(tenant)
    made = token(tenant, "1111#", tree["room"], room=True)
    granted = check(tenant, tree["room"], "1111#")
    assert granted == {
        "Granted": True,
        "Reason": "Granted",
        "CredentialId": made,
        "ResourceId": str(tree["room"]),
        "At": "2030-01-02T12:00:00Z",
        "ThrottledUntil": None,
    }
    assert (
        reasons(tenant, "1111#", tree["floor"], tree["building"], tree["other_room"], tree["bed"])
        == ["NoPermission"] * 4
    )
    assert (
        check(tenant, tree["room"], "1111#", at="2029-12-31T23:59:59Z")["Reason"] == "NotYetValid"
    )
    assert check(tenant, tree["room"], "1111#", at="2030-01-05T00:00:00Z")["Reason"] == "Expired"
    assert check(tenant, tree["room"], "1111#", at="2030-01-04T23:59:59Z")["Granted"] is True
    refused = check(tenant, tree["floor"], "1111#")
    assert (refused["Granted"], refused["CredentialId"]) == (False, made)


def test_floor_and_building_flags_open_the_ancestors(tenant: Tenant) -> None:
    tree = building(tenant)
    token(tenant, "04AA01", tree["room"], token_type="RfidTag", floor=True, building=True)
    assert reasons(
        tenant, "04AA01", tree["floor"], tree["building"], tree["room"], token_type="RfidTag"
    ) == ["Granted", "Granted", "NoPermission"]
    assert (
        check(tenant, tree["floor"], "04AA01", token_type="PinCode")["Reason"]
        == "UnknownCredential"
    )


def test_a_bed_token_opens_its_bed_and_room(tenant: Tenant) -> None:
    tree = building(tenant)
    token(tenant, "2222#", tree["bed"], bed=True, room=True)
    assert reasons(
        tenant, "2222#", tree["bed"], tree["room"], tree["other_room"], tree["floor"]
    ) == ["Granted", "Granted", "NoPermission", "NoPermission"]


def test_a_token_without_resource_uses_its_flags_across_the_property(tenant: Tenant) -> None:
    tree = building(tenant)
    token(tenant, "3333#", None, room=True)
    assert reasons(tenant, "3333#", tree["room"], tree["other_room"], tree["floor"]) == [
        "Granted",
        "Granted",
        "NoPermission",
    ]


def test_deleted_and_unknown_credentials(tenant: Tenant) -> None:
    tree = building(tenant)
    made = token(tenant, "4444#", tree["room"], room=True)
    assert tenant.mews("delete", Ids=[made]).status_code == 200
    deleted = check(tenant, tree["room"], "4444#")
    assert (deleted["Reason"], deleted["CredentialId"]) == ("Deleted", made)
    unknown = check(tenant, tree["room"], "9999#")
    assert (unknown["Reason"], unknown["CredentialId"]) == ("UnknownCredential", None)


def test_readers_and_credentials_of_other_enterprises(
    shared_deployment: Deployment, tenant: Tenant
) -> None:
    tree = building(tenant)
    token(tenant, "5555#", tree["room"], room=True)
    stranger = make_tenant(shared_deployment)
    foreign_reader = v1(
        stranger,
        "POST",
        "/access/check",
        ResourceId=str(tree["room"]),
        Type="PinCode",
        Value="5555#",
    )
    assert foreign_reader.status_code == 404
    own = building(stranger)
    assert check(stranger, own["room"], "5555#")["Reason"] == "UnknownCredential"


def test_every_check_is_an_event_without_the_value(
    shared_deployment: Deployment, tenant: Tenant
) -> None:
    tree = building(tenant)
    made = token(tenant, "6161#", tree["room"], room=True)
    check(tenant, tree["room"], "6161#")
    check(tenant, tree["floor"], "6161#")
    with shared_deployment.store.read() as conn:
        rows = conn.execute(
            select(
                events.c.kind,
                events.c.outcome,
                events.c.credential_uid,
                events.c.resource_uid,
                events.c.actor_kind,
                events.c.details,
            )
            .where(events.c.kind == "access.checked", events.c.credential_uid == uuid.UUID(made))
            .order_by(events.c.id)
        ).all()
    assert [(r.outcome, r.resource_uid) for r in rows] == [
        ("Granted", tree["room"]),
        ("NoPermission", tree["floor"]),
    ]
    assert all(r.actor_kind == "integration" for r in rows)
    assert all("6161" not in str(r.details) for r in rows)


def test_a_reader_under_attack_locks_and_cools_down(databases: DatabaseFactory) -> None:
    deployment = deploy(
        databases.new_url(),
        reader_failure_limit=3,
        reader_failure_window_seconds=2,
        reader_cooldown_seconds=2,
    )
    try:
        tenant = make_tenant(deployment)
        tree = building(tenant)
        token(tenant, "7777#", tree["room"], room=True)
        now = "2030-01-02T12:00:00Z"
        guesses = [check(tenant, tree["room"], f"000{n}#", at=now)["Reason"] for n in range(4)]
        assert guesses == ["UnknownCredential"] * 4
        locked = check(tenant, tree["room"], "7777#", at=now)
        assert (locked["Granted"], locked["Reason"]) == (False, "Throttled")
        assert locked["ThrottledUntil"] is not None
        elsewhere = check(tenant, tree["other_room"], "0000#", at=now)
        assert elsewhere["Reason"] == "UnknownCredential"  # the lock is per reader
        with deployment.store.read() as conn:
            throttled = conn.execute(
                select(events.c.outcome, events.c.details).where(
                    events.c.kind == "reader.throttled", events.c.resource_uid == tree["room"]
                )
            ).all()
        assert len(throttled) == 1
        assert throttled[0].details["RefusedChecks"] == 4
        time.sleep(2.2)
        assert check(tenant, tree["room"], "7777#", at=now)["Reason"] == "Granted"
    finally:
        deployment.close()


def test_unknown_reader_and_bad_input(tenant: Tenant) -> None:
    missing = v1(
        tenant, "POST", "/access/check", ResourceId=str(uuid.uuid4()), Type="PinCode", Value="1#"
    )
    assert missing.status_code == 404
    assert missing.json()["Error"] == "NotFound"
    bad: httpx.Response = v1(
        tenant, "POST", "/access/check", ResourceId="x", Type="PinCode", Value="1#"
    )
    assert bad.status_code == 400
    assert bad.json()["Message"].startswith("ResourceId:")
    assert (
        v1(
            tenant, "POST", "/access/check", ResourceId=str(uuid.uuid4()), Type="Face", Value="1"
        ).status_code
        == 400
    )


def test_a_hit_at_the_wrong_door_counts_against_the_guessing_budget(
    databases: DatabaseFactory,
) -> None:
    """NoPermission confirms a code exists, so it is a miss like UnknownCredential: once the
    token's budget is used up, even the guest's own door answers Throttled to it, and another
    token of the property is still answered."""
    deployment = deploy(databases.new_url(), guess_budget_per_caller=3)
    try:
        hotel = make_tenant(deployment)
        tree = building(hotel)
        token(hotel, "2468#", tree["room"], room=True)
        assert reasons(hotel, "2468#", tree["floor"], tree["other_room"]) == ["NoPermission"] * 2
        assert check(hotel, tree["room"], "2468#")["Reason"] == "Granted"  # not a miss
        assert check(hotel, tree["bed"], "2468#")["Reason"] == "NoPermission"  # the third
        throttled = check(hotel, tree["room"], "2468#")
        assert (throttled["Reason"], throttled["CredentialId"]) == ("Throttled", None)
        assert throttled["ThrottledUntil"] is not None
        other = add_access_token(
            deployment.store, client_token=hotel.client_token, enterprise_ids=[hotel.enterprise_id]
        )
        controller = Tenant(
            hotel.http, hotel.client_token, other.secret, hotel.enterprise_id, hotel.business_id
        )
        assert check(controller, tree["room"], "2468#")["Reason"] == "Granted"
    finally:
        deployment.close()
