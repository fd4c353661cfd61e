"""Scopes on access tokens: every operation of Mews and /api/v1 with a token of every scope,
allowed exactly where docs/access.md says, through a real server on both databases."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from keyledger.domain.callers.integrations import (
    add_access_token,
    add_integration,
    list_access_tokens,
)
from keyledger.domain.callers.permissions import OPERATION_PERMISSIONS, Permission
from keyledger.domain.properties.service import add_property
from keyledger.web.api import router as api
from keyledger.web.mews import router as mews
from tests.support import (
    MEWS_PATH,
    REPO,
    DatabaseFactory,
    Deployment,
    NexudusTenant,
    add_user_to,
    deploy,
    dump_database,
    ok,
    run,
    token_parameters,
)


def documented() -> dict[str, str]:
    """The operation table of docs/access.md ("Scopes"): operation id → scope."""
    text = (REPO / "docs" / "access.md").read_text()
    rows = re.findall(r"^\| `(\w+)` \| `[A-Z]+ [^`]+` \| `([a-z:]+)` \|$", text, re.MULTILINE)
    table = dict(rows)
    assert len(table) == len(rows), "an operation is listed twice"
    return table


def route_operations() -> set[str]:
    """Every operation an access token can call: the routes of the Mews dialect and /api/v1."""
    return {str(route.operation_id) for route in (*mews.router.routes, *api.router.routes)}  # type: ignore[attr-defined]


def test_every_operation_needs_exactly_the_documented_scope() -> None:
    table = documented()
    assert set(table) == route_operations()
    assert {op: str(p) for op, p in OPERATION_PERMISSIONS.items()} == table
    assert set(table.values()) == {p.value for p in Permission}  # every scope opens something


@dataclass
class World:
    """One property, a token per scope and one with all of them, and things to act on."""

    deployment: Deployment
    client_token: str
    enterprise_id: uuid.UUID
    business_id: int
    tokens: dict[str, str] = field(default_factory=dict)
    full: str = ""
    refs: dict[str, str] = field(default_factory=dict)

    def send(self, operation: str, token: str) -> httpx.Response:
        method, path, body = BUILDERS[operation](self)
        http = self.deployment.http
        if path.startswith(MEWS_PATH):
            credentials = {
                "ClientToken": self.client_token,
                "AccessToken": token,
                "Client": "scope matrix 1.0",
            }
            return http.post(path, json={**credentials, **(body or {})})
        return http.request(method, path, json=body, headers={"Authorization": f"Bearer {token}"})

    def send_full_mews(self, operation: str, body: dict[str, Any]) -> list[dict[str, Any]]:
        """A Mews call with the token holding every scope (to set things up)."""
        response = self.deployment.http.post(
            f"{MEWS_PATH}/{operation}",
            json={
                "ClientToken": self.client_token,
                "AccessToken": self.full,
                "Client": "scope matrix 1.0",
                **body,
            },
        )
        assert response.status_code == 200, response.text
        tokens: list[dict[str, Any]] = response.json()["ResourceAccessTokens"]
        return tokens


Builder = Callable[[World], tuple[str, str, dict[str, Any] | None]]

BUILDERS: dict[str, Builder] = {
    "mews_resourceAccessTokens_getAll": lambda w: (
        "POST",
        f"{MEWS_PATH}/getAll",
        {
            "EnterpriseIds": [str(w.enterprise_id)],
            "ResourceAccessTokenIds": [w.refs["pin_id"]],
            "Limitation": {"Count": 10},
        },
    ),
    "mews_resourceAccessTokens_add": lambda w: (
        "POST",
        f"{MEWS_PATH}/add",
        {"ResourceAccessTokenParameters": [token_parameters()]},
    ),
    "mews_resourceAccessTokens_update": lambda w: (
        "POST",
        f"{MEWS_PATH}/update",
        {
            "ResourceAccessTokenUpdates": [
                {
                    "ResourceAccessTokenId": w.refs["updated_pin"],
                    "ValidityEndUtc": {"Value": "2030-01-06T10:00:00Z"},
                }
            ]
        },
    ),
    "mews_resourceAccessTokens_delete": lambda w: (
        "POST",
        f"{MEWS_PATH}/delete",
        {"Ids": [w.refs["deleted_pin"]]},
    ),
    "v1_resources_list": lambda w: ("GET", "/api/v1/resources", None),
    "v1_resources_get": lambda w: ("GET", f"/api/v1/resources/{w.refs['room']}", None),
    "v1_resources_put": lambda w: (
        "PUT",
        f"/api/v1/resources/{w.refs['new_room']}",
        {"Kind": "Room", "Name": "Room 9", "ParentId": w.refs["building"]},
    ),
    "v1_resources_delete": lambda w: ("DELETE", f"/api/v1/resources/{w.refs['leaf']}", None),
    "v1_access_check": lambda w: (
        "POST",
        "/api/v1/access/check",
        {
            "ResourceId": w.refs["room"],
            "Type": "PinCode",
            "Value": w.refs["pin_value"],
            "At": "2030-01-02T12:00:00Z",
        },
    ),
    "v1_hotspot_session_start": lambda w: (
        "POST",
        "/api/v1/hotspot/sessions",
        {"BusinessId": w.business_id, "AccessCode": w.refs["code"], "DeviceId": "dev-new"},
    ),
    "v1_hotspot_session_usage": lambda w: (
        "POST",
        f"/api/v1/hotspot/sessions/{w.refs['session_a']}/usage",
        {"ElapsedSeconds": 60},
    ),
    "v1_hotspot_session_end": lambda w: (
        "POST",
        f"/api/v1/hotspot/sessions/{w.refs['session_b']}/end",
        {"ElapsedSeconds": 30},
    ),
    "v1_events_list": lambda w: ("GET", "/api/v1/events", None),
}

#: What each operation answers when allowed.
ALLOWED_STATUS = {"v1_resources_delete": 204}


def test_every_operation_has_a_request_in_the_matrix() -> None:
    assert set(BUILDERS) == route_operations()


def _world(deployment: Deployment) -> World:
    store = deployment.store
    prop = add_property(store, name=f"Scoped {uuid.uuid4().hex[:6]}")
    integration = add_integration(store, name="scoped")
    world = World(deployment, integration.secret, prop.enterprise_id, prop.business_id)
    for scope in Permission:
        world.tokens[scope.value] = add_access_token(
            store,
            client_token=integration.secret,
            enterprise_ids=[prop.enterprise_id],
            scopes=[scope.value],
        ).secret
    world.full = add_access_token(
        store, client_token=integration.secret, enterprise_ids=[prop.enterprise_id]
    ).secret
    http = deployment.http
    auth = {"Authorization": f"Bearer {world.full}"}
    refs = world.refs
    for name in ("building", "room", "leaf", "new_room"):
        refs[name] = str(uuid.uuid4())
    for uid, kind, parent in (
        (refs["building"], "Building", None),
        (refs["room"], "Room", refs["building"]),
        (refs["leaf"], "Room", refs["building"]),
    ):
        put = http.put(
            f"/api/v1/resources/{uid}",
            json={"Kind": kind, "Name": kind, "ParentId": parent},
            headers=auth,
        )
        assert put.status_code == 200, put.text
    refs["pin_value"] = f"{uuid.uuid4().int % 10**8:08d}#"
    pins = [
        token_parameters(value=refs["pin_value"], ResourceId=refs["room"]),
        token_parameters(),
        token_parameters(),
    ]
    added = world.send_full_mews("add", {"ResourceAccessTokenParameters": pins})
    refs["pin_id"], refs["updated_pin"], refs["deleted_pin"] = [t["Id"] for t in added]
    space = NexudusTenant(
        http, *add_user_to(deployment, [prop.business_id]), prop.business_id, prop.enterprise_id
    )
    refs["code"] = uuid.uuid4().hex[:10]
    space.create_id(AccessCode=refs["code"], MinutesIncluded=600, UserLimit=5)
    for device, name in (("dev-a", "session_a"), ("dev-b", "session_b")):
        started = http.post(
            "/api/v1/hotspot/sessions",
            json={"BusinessId": prop.business_id, "AccessCode": refs["code"], "DeviceId": device},
            headers=auth,
        ).json()
        assert started["Granted"], started
        refs[name] = started["SessionId"]
    return world


def _refused_as_documented(operation: str, response: httpx.Response, needed: str) -> None:
    assert response.status_code == 403, (operation, response.text)
    request_id = response.headers["request-id"]
    body = response.json()
    message = f"This operation needs the scope {needed}, which this access token does not have."
    if operation.startswith("mews_"):
        assert body == {"Message": message, "RequestId": request_id, "Details": None}
    else:
        assert body == {
            "Status": 403,
            "Error": "MissingScope",
            "Message": message,
            "RequestId": request_id,
        }


def _state(url: str) -> str:
    """The database's content (pg_dump's per-run ``\\restrict`` key left out)."""
    return "\n".join(line for line in dump_database(url).splitlines() if not line.startswith("\\"))


def test_scope_matrix(databases: DatabaseFactory) -> None:
    url = databases.new_url()
    deployment = deploy(url)
    try:
        world = _world(deployment)
        table = documented()
        before = _state(url)
        refused = 0
        for operation, needed in table.items():
            for scope, token in world.tokens.items():
                if scope != needed:
                    _refused_as_documented(operation, world.send(operation, token), needed)
                    refused += 1
        assert _state(url) == before  # nothing refused changed anything
        for operation, needed in table.items():
            response = world.send(operation, world.tokens[needed])
            expected = ALLOWED_STATUS.get(operation, 200)
            assert response.status_code == expected, (operation, response.text)
        assert refused == len(table) * (len(Permission) - 1)
    finally:
        deployment.close()


def _check(deployment: Deployment, token: str, room: str, value: str) -> dict[str, Any]:
    response = deployment.http.post(
        "/api/v1/access/check",
        json={"ResourceId": room, "Type": "PinCode", "Value": value, "At": "2030-01-02T12:00:00Z"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_credential_id_only_with_credentials_read(shared_deployment: Deployment) -> None:
    world = _world(shared_deployment)
    store = shared_deployment.store
    reader_and_auditor = add_access_token(
        store,
        client_token=world.client_token,
        enterprise_ids=[world.enterprise_id],
        scopes=["access:check", "credentials:read"],
    ).secret
    room, value = world.refs["room"], world.refs["pin_value"]
    door = _check(shared_deployment, world.tokens["access:check"], room, value)
    assert door["Granted"] is True
    assert door["Reason"] == "Granted"
    assert door["CredentialId"] is None
    seen = _check(shared_deployment, reader_and_auditor, room, value)
    assert seen["Granted"] is True
    assert seen["CredentialId"] == world.refs["pin_id"]
    assert (
        _check(shared_deployment, world.full, room, value)["CredentialId"] == world.refs["pin_id"]
    )
    # A refusal names no credential either (the leaf room is outside the PIN's reach).
    refused = _check(shared_deployment, world.tokens["access:check"], world.refs["leaf"], value)
    assert refused["Granted"] is False
    assert refused["CredentialId"] is None
    # The event log says no more than the answer did: an auditor without credentials:read sees
    # the checks, not which credential they matched.
    auditor = add_access_token(
        store,
        client_token=world.client_token,
        enterprise_ids=[world.enterprise_id],
        scopes=["events:read"],
    ).secret
    for token, shown in ((auditor, set()), (world.full, {world.refs["pin_id"]})):
        events = shared_deployment.http.get(
            "/api/v1/events",
            params={"Limit": 1000, "Kind": "access.checked"},
            headers={"Authorization": f"Bearer {token}"},
        ).json()["Events"]
        assert len(events) >= 4
        assert {e["CredentialId"] for e in events} - {None} == shown


def test_events_name_the_access_token_and_its_scopes(shared_deployment: Deployment) -> None:
    world = _world(shared_deployment)
    events = shared_deployment.http.get(
        "/api/v1/events",
        params={"Limit": 1000},
        headers={"Authorization": f"Bearer {world.tokens['events:read']}"},
    ).json()["Events"]
    created = [e for e in events if e["Kind"] == "access_token.created"]
    assert sorted(tuple(e["Details"]["Scopes"]) for e in created) == sorted(
        [(p.value,) for p in Permission] + [tuple(p.value for p in Permission)]
    )
    by_id = {e["Details"]["AccessTokenId"]: e["Details"]["Scopes"] for e in created}
    saved = [e for e in events if e["Kind"] == "resource.saved"]
    assert len(saved) == 3
    assert {e["Actor"]["Kind"] for e in saved} == {"integration"}
    (full_id,) = {e["Actor"]["AccessTokenId"] for e in saved}
    assert by_id[full_id] == [p.value for p in Permission]
    listed = {
        row["id"]: row
        for row in list_access_tokens(shared_deployment.store)
        if row["enterprise_ids"] == [world.enterprise_id]
    }
    assert {token_id: row["scopes"] for token_id, row in listed.items()} == by_id
    assert {row["integration_name"] for row in listed.values()} == {"scoped"}


@pytest.fixture
def cli_url(sqlite_databases: DatabaseFactory) -> str:
    return sqlite_databases.new_url()


def test_list_access_tokens_shows_scopes_never_secrets(cli_url: str) -> None:
    hotel = ok(cli_url, "admin", "add-property", "--name", "Scoped CLI")
    client = ok(cli_url, "admin", "add-integration", "--name", "Door vendor")["ClientToken"]
    made = ok(
        cli_url,
        "admin",
        "add-access-token",
        "--client-token",
        client,
        "--enterprise",
        hotel["EnterpriseId"],
        "--scope",
        "hotspot",
        "--scope",
        "access:check",
    )
    assert made["Scopes"] == ["access:check", "hotspot"]
    every = ok(
        cli_url,
        "admin",
        "add-access-token",
        "--client-token",
        client,
        "--enterprise",
        hotel["EnterpriseId"],
    )
    assert every["Scopes"] == [p.value for p in Permission]
    ok(cli_url, "admin", "revoke-access-token", "--id", str(every["AccessTokenId"]))
    done = run(cli_url, "admin", "list-access-tokens")
    assert done.returncode == 0, done.stderr
    assert made["AccessToken"] not in done.stdout
    assert every["AccessToken"] not in done.stdout
    assert client not in done.stdout
    listed = ok(cli_url, "admin", "list-access-tokens")["AccessTokens"]
    assert [
        (t["AccessTokenId"], t["IntegrationName"], t["EnterpriseIds"], t["Scopes"]) for t in listed
    ] == [
        (made["AccessTokenId"], "Door vendor", [hotel["EnterpriseId"]], made["Scopes"]),
        (every["AccessTokenId"], "Door vendor", [hotel["EnterpriseId"]], every["Scopes"]),
    ]
    assert listed[0]["RevokedUtc"] is None
    assert listed[1]["RevokedUtc"] is not None
    unknown = run(
        cli_url,
        "admin",
        "add-access-token",
        "--client-token",
        client,
        "--enterprise",
        hotel["EnterpriseId"],
        "--scope",
        "doors:open",
    )
    assert unknown.returncode == 2
    assert "doors:open" in unknown.stderr
    assert "access:check" in unknown.stderr
    assert len(ok(cli_url, "admin", "list-access-tokens")["AccessTokens"]) == 2
