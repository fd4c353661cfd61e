"""The event log: every change and decision, newest first, filtered, never a credential value."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select

from keyledger.store.schema import events
from tests.support import (
    DatabaseFactory,
    Deployment,
    NexudusTenant,
    Tenant,
    add,
    add_user_to,
    building,
    check,
    make_tenant,
    ok,
    settings_for,
    token_parameters,
    v1,
)


def listing(tenant: Tenant, **params: Any) -> dict[str, Any]:
    response = tenant.http.get(
        "/api/v1/events", params=params, headers={"Authorization": f"Bearer {tenant.access_token}"}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_mews_changes_and_checks_are_events(tenant: Tenant) -> None:
    tree = building(tenant)
    (made,) = add(tenant, token_parameters(value="8080#", ResourceId=str(tree["room"])))
    tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {
                "ResourceAccessTokenId": made["Id"],
                "ValidityEndUtc": {"Value": "2030-01-04T00:00:00Z"},
            }
        ],
    )
    check(tenant, tree["room"], "8080#")
    tenant.mews("delete", Ids=[made["Id"]])
    tenant.mews("delete", Ids=[made["Id"]])  # a retry changes nothing: no event
    found = listing(tenant, CredentialId=made["Id"])["Events"]
    assert [e["Kind"] for e in found] == [
        "credential.deleted",
        "access.checked",
        "credential.updated",
        "credential.created",
    ]
    assert found[2]["Details"] == {"Changed": ["ValidityEndUtc"]}
    assert found[3]["Details"] == {"Kind": "reservation", "Type": "PinCode"}
    assert {e["Actor"]["Kind"] for e in found} == {"integration"}
    assert all(e["EnterpriseId"] == str(tenant.enterprise_id) for e in found)
    ids = [e["Id"] for e in found]
    assert ids == sorted(ids, reverse=True)
    assert "8080" not in str(found)


def test_nexudus_changes_are_events_by_the_user(
    shared_deployment: Deployment, tenant: Tenant
) -> None:
    space = NexudusTenant(
        shared_deployment.http,
        *add_user_to(shared_deployment, [tenant.business_id]),
        tenant.business_id,
        tenant.enterprise_id,
    )
    voucher = space.create_id(AccessCode="WIFI-SECRET-1", MinutesIncluded=30)
    unique_id = space.get(f"/{voucher}").json()["UniqueId"]
    space.put(
        Id=voucher, BusinessId=space.business_id, AccessCode="WIFI-SECRET-2", MinutesIncluded=60
    )
    space.command("ADD_MINUTES", [voucher], Minutes=5)
    space.delete(voucher)
    found = listing(tenant, CredentialId=unique_id)["Events"]
    assert [(e["Kind"], e["Details"].get("Via")) for e in found] == [
        ("credential.deleted", "delete"),
        ("credential.updated", "ADD_MINUTES"),
        ("credential.updated", "replace"),
        ("credential.created", None),
    ]
    assert found[2]["Details"]["Changed"] == ["AccessCode", "MinutesIncluded", "MinutesLeft"]
    assert {e["Actor"]["Label"] for e in found} == {space.email}
    assert "WIFI-SECRET" not in str(found)


def test_keyset_pages_and_filters(shared_deployment: Deployment, tenant: Tenant) -> None:
    tree = building(tenant)
    for n in range(3):
        check(tenant, tree["room"], f"{n}-nothing#")
    everything = listing(tenant, Limit=1000)["Events"]
    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"Limit": 3}
        if cursor is not None:
            params["Cursor"] = cursor
        page = listing(tenant, **params)
        if not page["Events"]:
            assert page["Cursor"] is None
            break
        pages.extend(page["Events"])
        cursor = page["Cursor"]
    assert [e["Id"] for e in pages] == [e["Id"] for e in everything]
    assert [e["Kind"] for e in everything] == [
        *["access.checked"] * 3,
        *["resource.saved"] * 5,
        "access_token.created",
        "property.created",
    ]
    checks = listing(tenant, Kind="access.checked")["Events"]
    assert [e["Outcome"] for e in checks] == ["UnknownCredential"] * 3
    at_room = listing(tenant, ResourceId=str(tree["room"]))["Events"]
    assert {e["Kind"] for e in at_room} == {"resource.saved", "access.checked"}
    stamp = everything[0]["OccurredUtc"]
    assert listing(tenant, StartUtc="2099-01-01T00:00:00Z")["Events"] == []
    assert len(listing(tenant, EndUtc="2000-01-01T00:00:00Z")["Events"]) == 0
    assert listing(tenant, StartUtc=stamp)["Events"][0]["Id"] == everything[0]["Id"]
    bad = tenant.http.get(
        "/api/v1/events",
        params={"StartUtc": "yesterday"},
        headers={"Authorization": f"Bearer {tenant.access_token}"},
    )
    assert bad.status_code == 400
    # One value given twice is refused, naming it (the last one had won); Kind may repeat.
    for params in ({"Limit": ["1", "3"]}, {"Cursor": ["5", "9"]}, {"StartUtc": [stamp, stamp]}):
        twice = tenant.http.get(
            "/api/v1/events",
            params=params,
            headers={"Authorization": f"Bearer {tenant.access_token}"},
        )
        assert twice.status_code == 400, twice.text
        name = next(iter(params))
        assert (twice.json()["Error"], twice.json()["Message"]) == (
            "InvalidInput",
            f"{name}: is given more than once.",
        )
    kinds = listing(tenant, Kind=["resource.saved", "access.checked"])["Events"]
    assert {e["Kind"] for e in kinds} == {"resource.saved", "access.checked"}
    stranger = make_tenant(shared_deployment)
    assert listing(stranger, ResourceId=str(tree["room"]))["Events"] == []
    assert v1(stranger, "GET", "/resources").json() == {"Resources": []}


def test_admin_changes_are_events_and_the_cli_prints_them(
    sqlite_databases: DatabaseFactory,
) -> None:
    url = sqlite_databases.new_url()
    hotel = ok(url, "admin", "add-property", "--name", "Evented")
    client_token = ok(url, "admin", "add-integration", "--name", "I")["ClientToken"]
    access = ok(
        url,
        "admin",
        "add-access-token",
        "--client-token",
        client_token,
        "--enterprise",
        hotel["EnterpriseId"],
    )
    ok(url, "admin", "revoke-access-token", "--id", str(access["AccessTokenId"]))
    printed = ok(url, "admin", "events", "--enterprise", hotel["EnterpriseId"])
    assert [e["Kind"] for e in printed["Events"]] == [
        "access_token.revoked",
        "access_token.created",
        "property.created",
    ]
    assert all(
        e["Actor"] == {"Kind": "system", "Id": None, "Label": "System", "AccessTokenId": None}
        for e in printed["Events"]
    )
    everything = ok(url, "admin", "events", "--kind", "integration.created")
    assert [e["Details"]["Name"] for e in everything["Events"]] == ["I"]
    assert access["AccessToken"] not in str(everything) + str(printed)


def test_no_event_holds_a_credential_value(shared_deployment: Deployment, tenant: Tenant) -> None:
    tree = building(tenant)
    secret = f"{uuid.uuid4().int % 10**9}#"
    (made,) = add(tenant, token_parameters(value=secret, ResourceId=str(tree["room"])))
    tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {"ResourceAccessTokenId": made["Id"], "Value": {"Value": secret + "9"}}
        ],
    )
    check(tenant, tree["room"], secret)
    with shared_deployment.store.read() as conn:
        rows = conn.execute(select(events)).all()
    assert secret.rstrip("#") not in str(rows)


def test_the_database_refuses_to_change_events(databases: DatabaseFactory) -> None:
    import pytest
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from keyledger.store import Store

    store = Store(settings_for(databases.new_url()))
    try:
        from keyledger.domain.properties.service import add_property

        add_property(store, name="Audited")  # writes a property.created event
        for statement in ("UPDATE events SET kind = 'forged'", "DELETE FROM events"):
            with pytest.raises(DBAPIError, match="events are immutable"), store.write() as conn:
                conn.execute(text(statement))
        with store.read() as conn:
            kinds = conn.execute(text("SELECT kind FROM events")).scalars().all()
        assert kinds == ["property.created"]
    finally:
        store.dispose()
