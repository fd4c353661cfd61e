"""Each error case of the Mews contract: status, Message, RequestId, nothing written."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from keyledger.domain.callers.integrations import revoke_access_token, set_integration_enabled
from tests.mews_schema import assert_valid_mews_response
from tests.support import MEWS_PATH, Deployment, Tenant, assert_error, token_parameters


def count_tokens(tenant: Tenant) -> int:
    listed = tenant.mews(
        "getAll",
        CollidingUtc={"StartUtc": "2030-01-01T00:00:00Z", "EndUtc": "2030-03-31T00:00:00Z"},
        Limitation={"Count": 1000},
    )
    assert listed.status_code == 200
    return len(listed.json()["ResourceAccessTokens"])


def test_unparsable_body_is_invalid_json(tenant: Tenant) -> None:
    response = tenant.http.post(f"{MEWS_PATH}/add", content=b'{"ClientToken": ')
    assert_error(response, 400, "Invalid JSON")
    response = tenant.http.post(f"{MEWS_PATH}/add", content=b"[1, 2]")
    assert_error(response, 400, "Invalid JSON")


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"ClientToken": None}, "ClientToken is missing"),
        ({"ClientToken": "0" * 64}, "Invalid ClientToken or AccessToken"),
        ({"AccessToken": "nope"}, "Invalid ClientToken or AccessToken"),
        ({"AccessToken": 12345}, "AccessToken is missing"),
        ({"Client": ""}, "Client is missing"),
        ({"Client": None}, "Client is missing"),
    ],
)
def test_bad_credentials_are_401(tenant: Tenant, change: dict[str, Any], expected: str) -> None:
    body = {**tenant.credentials, "ResourceAccessTokenParameters": [token_parameters()], **change}
    body = {k: v for k, v in body.items() if v is not None}
    response = tenant.http.post(f"{MEWS_PATH}/add", json=body)
    assert_error(response, 401, expected)
    assert count_tokens(tenant) == 0


def test_revoked_token_and_disabled_integration_are_401(
    shared_deployment: Deployment, tenant: Tenant
) -> None:
    # Not called before: no worker remembers this token yet (KEYLEDGER_AUTH_CACHE_SECONDS).
    set_integration_enabled(
        shared_deployment.store, enabled=False, client_token=tenant.client_token
    )
    assert_error(
        tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()]),
        401,
        "The integration is disabled",
    )
    set_integration_enabled(shared_deployment.store, enabled=True, client_token=tenant.client_token)
    revoke_access_token(shared_deployment.store, access_token=tenant.access_token)
    assert_error(
        tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()]),
        401,
        "The access token has been revoked",
    )


_TOO_MANY = [str(uuid.uuid4()) for _ in range(1001)]


@pytest.mark.parametrize(
    ("operation", "body", "message"),
    [
        ("getAll", {"Limitation": {"Count": 10}}, "Invalid ResourceAccessTokenIds: give at least"),
        (
            "getAll",
            {"ServiceOrderIds": ["x"], "Limitation": {"Count": 1}},
            "Invalid ServiceOrderIds",
        ),
        (
            "getAll",
            {"ServiceOrderIds": _TOO_MANY, "Limitation": {"Count": 1}},
            "Invalid ServiceOrderIds",
        ),
        ("getAll", {"ServiceOrderIds": [], "Limitation": {"Count": 1}}, "Invalid ServiceOrderIds"),
        ("getAll", {"ServiceOrderIds": [str(uuid.uuid4())]}, "Invalid Limitation"),
        (
            "getAll",
            {"ServiceOrderIds": [str(uuid.uuid4())], "Limitation": {"Count": 0}},
            "Invalid Count",
        ),
        (
            "getAll",
            {"ServiceOrderIds": [str(uuid.uuid4())], "Limitation": {"Count": 1001}},
            "Invalid Count",
        ),
        (
            "getAll",
            {"ServiceOrderIds": [str(uuid.uuid4())], "Limitation": {"Count": "10"}},
            "Invalid Count",
        ),
        (
            "getAll",
            {"ServiceOrderIds": [str(uuid.uuid4())], "Limitation": {"Count": 1, "Cursor": "no"}},
            "Invalid Cursor",
        ),
        (
            "getAll",
            {
                "ServiceOrderIds": [str(uuid.uuid4())],
                "Limitation": {"Count": 1, "Cursor": str(uuid.uuid4())},
            },
            "Invalid Cursor: The cursor",
        ),
        (
            "getAll",
            {
                "UpdatedUtc": {
                    "StartUtc": "2030-01-01T00:00:00Z",
                    "EndUtc": "2030-04-01T00:00:01Z",
                },
                "Limitation": {"Count": 1},
            },
            "Invalid UpdatedUtc: UpdatedUtc spans more than 3 months",
        ),
        (
            "getAll",
            {
                "CollidingUtc": {
                    "StartUtc": "2030-01-02T00:00:00Z",
                    "EndUtc": "2030-01-01T00:00:00Z",
                },
                "Limitation": {"Count": 1},
            },
            "Invalid CollidingUtc: CollidingUtc.EndUtc is before",
        ),
        (
            "getAll",
            {
                "CollidingUtc": {
                    "StartUtc": "2030-01-01T00:00:00",
                    "EndUtc": "2030-01-02T00:00:00Z",
                },
                "Limitation": {"Count": 1},
            },
            "Invalid StartUtc: CollidingUtc.StartUtc is invalid: the timestamp needs a time zone",
        ),
        (
            "getAll",
            {
                "ServiceOrderIds": [str(uuid.uuid4())],
                "ActivityStates": ["Gone"],
                "Limitation": {"Count": 1},
            },
            "Invalid ActivityStates",
        ),
        ("add", {"ResourceAccessTokenParameters": []}, "Invalid ResourceAccessTokenParameters"),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(Value="")]},
            "Invalid Value",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(Value="x" * 256)]},
            "Invalid Value: ResourceAccessTokenParameters[0].Value has more than 255 characters",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(Value=1234)]},
            "Invalid Value",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(Type="Password")]},
            "Invalid Type",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(ServiceOrderId="123")]},
            "Invalid ServiceOrderId: ResourceAccessTokenParameters[0].ServiceOrderId must be a",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(ValidityStartUtc="2030-01-01")]},
            "Invalid ValidityStartUtc",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters(ValidityEndUtc=1893456000)]},
            "Invalid ValidityEndUtc",
        ),
        (
            "add",
            {
                "ResourceAccessTokenParameters": [
                    token_parameters(Permissions={"Bed": {"Value": "true"}})
                ]
            },
            "Invalid Bed",
        ),
        (
            "add",
            {
                "ResourceAccessTokenParameters": [
                    token_parameters(Permissions={"Room": {"Value": None}})
                ]
            },
            "Invalid Room",
        ),
        (
            "add",
            {
                "ResourceAccessTokenParameters": [
                    {k: v for k, v in token_parameters().items() if k != "Permissions"}
                ]
            },
            "Invalid Permissions",
        ),
        (
            "add",
            {"ResourceAccessTokenParameters": [token_parameters()] * 1001},
            "Invalid ResourceAccessTokenParameters",
        ),
        (
            "update",
            {"ResourceAccessTokenUpdates": [{"ResourceAccessTokenId": "abc"}]},
            "Invalid ResourceAccessTokenId",
        ),
        (
            "update",
            {"ResourceAccessTokenUpdates": [{"ResourceAccessTokenId": str(uuid.uuid4())}]},
            "Invalid ResourceAccessTokenId: No such credential in scope",
        ),
        (  # found by schemathesis at full size: a time before year 1 once it is in UTC
            "add",
            {
                "ResourceAccessTokenParameters": [
                    token_parameters(start="0001-01-01T00:00:00+01:00")
                ]
            },
            "Invalid ValidityStartUtc",
        ),
        ("delete", {"Ids": [str(uuid.uuid4())]}, "Invalid Ids: No such credential in scope"),
        ("delete", {"Ids": "abc"}, "Invalid Ids"),
        ("delete", {}, "Invalid Ids"),
    ],
)
def test_malformed_input_is_400_and_writes_nothing(
    tenant: Tenant, operation: str, body: dict[str, Any], message: str
) -> None:
    assert tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()]).status_code == 200
    assert_error(tenant.mews(operation, **body), 400, message)
    assert count_tokens(tenant) == 1


def _added(tenant: Tenant, **parameters: Any) -> dict[str, Any]:
    response = tenant.mews("add", ResourceAccessTokenParameters=[token_parameters(**parameters)])
    assert response.status_code == 200, response.text
    token: dict[str, Any] = response.json()["ResourceAccessTokens"][0]
    return token


def test_null_on_a_required_update_value_is_400(tenant: Tenant) -> None:
    token = _added(tenant)
    for name in ("ValidityStartUtc", "ValidityEndUtc", "Value"):
        response = tenant.mews(
            "update",
            ResourceAccessTokenUpdates=[
                {"ResourceAccessTokenId": token["Id"], name: {"Value": None}}
            ],
        )
        assert_error(response, 400, f"Invalid {name}")
    unchanged = tenant.mews("getAll", ResourceAccessTokenIds=[token["Id"]], Limitation={"Count": 1})
    assert unchanged.json()["ResourceAccessTokens"] == [token]


def test_batch_with_one_bad_validity_is_403_and_atomic(tenant: Tenant) -> None:
    good = token_parameters()
    bad = token_parameters(
        ValidityStartUtc="2030-01-05T10:00:00Z", ValidityEndUtc="2030-01-05T10:00:00Z"
    )
    response = tenant.mews("add", ResourceAccessTokenParameters=[good, good, bad])
    assert_error(response, 403, "Item 2: the validity must end after it starts")
    assert count_tokens(tenant) == 0


def test_update_batch_is_atomic(tenant: Tenant) -> None:
    first, second = _added(tenant), _added(tenant)
    response = tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {"ResourceAccessTokenId": first["Id"], "Value": {"Value": "9999#"}},
            {
                "ResourceAccessTokenId": second["Id"],
                "ValidityEndUtc": {"Value": "2029-01-01T00:00:00Z"},
            },
        ],
    )
    assert_error(response, 403, "Item 1: the validity must end after it starts")
    listed = tenant.mews(
        "getAll", ResourceAccessTokenIds=[first["Id"], second["Id"]], Limitation={"Count": 10}
    ).json()["ResourceAccessTokens"]
    assert sorted(listed, key=lambda t: t["Id"]) == sorted([first, second], key=lambda t: t["Id"])


def test_update_of_a_deleted_token_is_403(tenant: Tenant) -> None:
    token = _added(tenant)
    assert tenant.mews("delete", Ids=[token["Id"]]).status_code == 200
    response = tenant.mews(
        "update",
        ResourceAccessTokenUpdates=[
            {"ResourceAccessTokenId": token["Id"], "Value": {"Value": "1#"}}
        ],
    )
    assert_error(response, 403, f"Item 0: token {token['Id']} is deleted")


def test_delete_with_one_unknown_id_deletes_nothing(tenant: Tenant) -> None:
    token = _added(tenant)
    response = tenant.mews("delete", Ids=[token["Id"], str(uuid.uuid4())])
    assert_error(response, 400, "Invalid Ids")
    assert count_tokens(tenant) == 1
    still = tenant.mews("getAll", ResourceAccessTokenIds=[token["Id"]], Limitation={"Count": 1})
    assert still.json()["ResourceAccessTokens"][0]["IsActive"] is True


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{MEWS_PATH}/getall"),
        ("POST", f"{MEWS_PATH}/getAll/"),
        ("GET", f"{MEWS_PATH}/getAll"),
        ("PUT", f"{MEWS_PATH}/add"),
        ("POST", f"{MEWS_PATH}/remove"),
        ("POST", "/api/connector/v1/reservations/getAll"),
    ],
)
def test_unknown_path_or_method_is_404_in_mews_shape(
    tenant: Tenant, method: str, path: str
) -> None:
    response = tenant.http.request(method, path, json=tenant.credentials)
    assert_error(response, 404, "No operation at")


def test_oversized_body_is_413(databases: Any) -> None:
    from tests.support import deploy, make_tenant

    deployment = deploy(databases.new_url(), max_body_bytes=4096)
    try:
        tenant = make_tenant(deployment)
        items = [token_parameters() for _ in range(40)]
        assert_error(
            tenant.mews("add", ResourceAccessTokenParameters=items), 413, "The request body"
        )
        assert count_tokens(tenant) == 0
    finally:
        deployment.close()


def test_request_past_the_time_limit_is_408_and_keeps_nothing(databases: Any) -> None:
    from tests.support import deploy, make_tenant

    deployment = deploy(databases.new_url(), request_timeout_seconds=0.000001)
    try:
        tenant = make_tenant(deployment)
        response = tenant.mews(
            "add", ResourceAccessTokenParameters=[token_parameters() for _ in range(200)]
        )
        assert_error(response, 408, "The request took longer than the processing time limit")
    finally:
        deployment.close()
    relaxed = deploy(deployment.settings.database_url)
    try:
        tenant.http = relaxed.http
        assert count_tokens(tenant) == 0
    finally:
        relaxed.close()


def test_rate_limit_is_429_with_retry_after(databases: Any) -> None:
    from tests.support import deploy, make_tenant

    deployment = deploy(databases.new_url(), mews_rate_limit=5, mews_rate_window_seconds=30)
    try:
        tenant, other = make_tenant(deployment), make_tenant(deployment)
        statuses = [count_tokens(tenant) for _ in range(5)]
        assert statuses == [0] * 5
        response = tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()])
        body = assert_error(response, 429, "Too many requests for this AccessToken")
        assert 1 <= int(response.headers["Retry-After"]) <= 30
        assert f"retry after {response.headers['Retry-After']} s" in body["Message"]
        # Another access token has a budget of its own.
        assert count_tokens(other) == 0
    finally:
        deployment.close()


def test_unexpected_fault_is_500_without_internals(databases: Any) -> None:
    from sqlalchemy import text

    from tests.support import deploy, make_tenant

    deployment = deploy(databases.new_url())
    try:
        tenant = make_tenant(deployment)
        cascade = " CASCADE" if deployment.store.dialect == "postgresql" else ""
        with deployment.store.write() as conn:
            conn.execute(text(f"DROP TABLE credentials{cascade}"))
        response = tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()])
        body = assert_error(response, 500, "An unexpected error occurred")
        assert "credentials" not in body["Message"]
        assert "sql" not in response.text.lower()
    finally:
        deployment.close()


def test_error_bodies_validate_against_the_mews_schema(tenant: Tenant) -> None:
    response = tenant.mews("getAll", Limitation={"Count": 1})
    assert_valid_mews_response("getAll", 400, response.json())
