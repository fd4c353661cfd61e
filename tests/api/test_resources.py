"""The resource tree through /api/v1 and as CSV through the CLI."""

from __future__ import annotations

import uuid

from keyledger.domain.callers.integrations import revoke_access_token
from tests.support import (
    DatabaseFactory,
    Deployment,
    Tenant,
    building,
    make_tenant,
    ok,
    put,
    run,
    v1,
)


def test_put_get_list_and_delete(tenant: Tenant) -> None:
    tree = building(tenant)
    listed = v1(tenant, "GET", "/resources").json()["Resources"]
    assert [r["Kind"] for r in listed] == ["Building", "Floor", "Room", "Room", "Bed"]
    assert {r["EnterpriseId"] for r in listed} == {str(tenant.enterprise_id)}
    room = v1(tenant, "GET", f"/resources/{tree['room']}").json()
    assert room == {
        "Id": str(tree["room"]),
        "EnterpriseId": str(tenant.enterprise_id),
        "ParentId": str(tree["floor"]),
        "Kind": "Room",
        "Name": room["Name"],
    }
    renamed = put(tenant, tree["room"], "Room", tree["floor"], Name="Suite 1")
    assert renamed.json()["Name"] == "Suite 1"
    refused = v1(tenant, "DELETE", f"/resources/{tree['room']}")
    assert refused.status_code == 409
    assert "has 1 child resource" in refused.json()["Message"]
    assert v1(tenant, "DELETE", f"/resources/{tree['bed']}").status_code == 204
    assert v1(tenant, "GET", f"/resources/{tree['bed']}").status_code == 404
    assert v1(tenant, "DELETE", f"/resources/{tree['room']}").status_code == 204


def test_the_tree_stays_valid(tenant: Tenant) -> None:
    tree = building(tenant)
    missing_parent = put(tenant, uuid.uuid4(), "Room", uuid.uuid4())
    assert missing_parent.status_code == 400
    assert "is not a resource of this property" in missing_parent.json()["Message"]
    upside_down = put(tenant, uuid.uuid4(), "Floor", tree["room"])
    assert upside_down.status_code == 409
    assert "a Floor cannot be inside a Room" in upside_down.json()["Message"]
    demoted = put(tenant, tree["floor"], "Bed", tree["building"])
    assert demoted.status_code == 409  # its rooms would end up inside a bed
    assert put(tenant, uuid.uuid4(), "Tower").status_code == 400
    assert v1(tenant, "GET", "/resources").json()["Resources"][1]["Kind"] == "Floor"


def test_resources_are_isolated_between_enterprises(
    shared_deployment: Deployment, tenant: Tenant
) -> None:
    tree = building(tenant)
    stranger = make_tenant(shared_deployment)
    assert v1(stranger, "GET", "/resources").json() == {"Resources": []}
    assert v1(stranger, "GET", f"/resources/{tree['room']}").status_code == 404
    assert v1(stranger, "DELETE", f"/resources/{tree['bed']}").status_code == 404
    outside = put(stranger, uuid.uuid4(), "Room", EnterpriseId=str(tenant.enterprise_id))
    assert outside.status_code == 403
    assert v1(stranger, "GET", f"/resources?EnterpriseId={tenant.enterprise_id}").status_code == 403
    assert len(v1(tenant, "GET", "/resources").json()["Resources"]) == 5


def test_portfolio_tokens_name_the_enterprise(shared_deployment: Deployment) -> None:
    portfolio = make_tenant(shared_deployment, properties=2)
    unnamed = put(portfolio, uuid.uuid4(), "Building")
    assert unnamed.status_code == 400
    named = put(
        portfolio, uuid.uuid4(), "Building", EnterpriseId=str(portfolio.extra_enterprises[0])
    )
    assert named.json()["EnterpriseId"] == str(portfolio.extra_enterprises[0])


def test_authentication(shared_deployment: Deployment, tenant: Tenant) -> None:
    anonymous = tenant.http.get("/api/v1/resources")
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert anonymous.json()["Error"] == "Unauthenticated"
    wrong = tenant.http.get("/api/v1/resources", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    revoke_access_token(shared_deployment.store, access_token=tenant.access_token)
    assert v1(tenant, "GET", "/resources").status_code == 401


def test_csv_import_and_export_round_trip(sqlite_databases: DatabaseFactory) -> None:
    url = sqlite_databases.new_url()
    hotel = ok(url, "admin", "add-property", "--name", "H")["EnterpriseId"]
    other = ok(url, "admin", "add-property", "--name", "O")["EnterpriseId"]
    b, f, r = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    csv_text = (
        "EnterpriseId,Id,ParentId,Kind,Name\n"
        f'{hotel},{b},,Building,Main\n{hotel},{f},{b},Floor,"First, east"\n'
        f"{hotel},{r},{f},Room,101\n{other},{uuid.uuid4()},,Building,Annex\n"
    )
    from pathlib import Path

    path = Path(url.removeprefix("sqlite:///")).with_suffix(".csv")
    path.write_text(csv_text)
    assert ok(url, "admin", "import-resources", str(path)) == {"Imported": 4}
    exported = run(url, "admin", "export-resources", "--enterprise", hotel)
    assert exported.returncode == 0
    lines = exported.stdout.splitlines()
    assert lines[0] == "EnterpriseId,Id,ParentId,Kind,Name"
    assert lines[1:] == [
        f"{hotel},{b},,Building,Main",
        f'{hotel},{f},{b},Floor,"First, east"',
        f"{hotel},{r},{f},Room,101",
    ]
    path.write_text(exported.stdout)
    assert ok(url, "admin", "import-resources", str(path)) == {"Imported": 3}  # idempotent
    bad = path.with_name("bad.csv")
    bad.write_text(
        f"EnterpriseId,Id,ParentId,Kind,Name\n{hotel},{uuid.uuid4()},{uuid.uuid4()},Room,Orphan\n"
    )
    failed = run(url, "admin", "import-resources", str(bad))
    assert failed.returncode == 2
    assert "is not a resource of this property" in failed.stderr
    assert len(run(url, "admin", "export-resources").stdout.splitlines()) == 5
