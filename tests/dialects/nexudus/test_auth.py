"""Authentication and roles on every endpoint: 401 (with WWW-Authenticate), 403 for a missing
role, 404 for records of businesses the user does not belong to; the bearer-token flow."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from keyledger.kit.clock import utc_now
from keyledger.store.schema import bearer_tokens
from tests.support import (
    ALL_ROLES,
    NEXUDUS_PATH,
    Deployment,
    NexudusTenant,
    add_user_to,
    make_nexudus_tenant,
)

Endpoint = Callable[[NexudusTenant, int], httpx.Response]


def _call(
    method: str, path: str, body: Callable[[NexudusTenant, int], Any] | None = None
) -> Endpoint:
    def call(space: NexudusTenant, voucher_id: int) -> httpx.Response:
        return space.http.request(
            method,
            NEXUDUS_PATH + path.format(id=voucher_id),
            json=None if body is None else body(space, voucher_id),
            auth=space.auth,
        )

    return call


ENDPOINTS: dict[str, tuple[str, Endpoint]] = {
    "list": ("AccessToken-List", _call("GET", "")),
    "commands": ("AccessToken-List", _call("GET", "/commands")),
    "get": ("AccessToken-Read", _call("GET", "/{id}")),
    "create": (
        "AccessToken-Create",
        _call(
            "POST",
            "",
            lambda s, _: {"BusinessId": s.business_id, "AccessCode": "NEW", "MinutesIncluded": 5},
        ),
    ),
    "replace": (
        "AccessToken-Edit",
        _call(
            "PUT",
            "",
            lambda s, i: {
                "Id": i,
                "BusinessId": s.business_id,
                "AccessCode": "X",
                "MinutesIncluded": 5,
            },
        ),
    ),
    "delete": ("AccessToken-Delete", _call("DELETE", "/{id}")),
    "runcommand": (
        "AccessToken-Edit",
        _call("POST", "/runcommand", lambda _, i: {"Key": "RESET_MINUTES", "Ids": [i]}),
    ),
}


def _basic(text: str) -> str:
    return "Basic " + base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
@pytest.mark.parametrize(
    "header",
    [
        None,
        "wrong-password",
        "unknown-user",
        "Digest abc",
        "Basic !!!not-base64",
        "Basic " + base64.b64encode(b"no-colon").decode(),
        "Bearer 0000",
    ],
)
def test_bad_credentials_are_401(space: NexudusTenant, endpoint: str, header: str | None) -> None:
    voucher_id = space.create_id()
    if header == "wrong-password":
        header = _basic(f"{space.email}:not the password")
    elif header == "unknown-user":
        header = _basic("nobody@example.com:whatever123")
    headers = {} if header is None else {"Authorization": header}
    _, call = ENDPOINTS[endpoint]
    anonymous = NexudusTenant(space.http, "", "", space.business_id, space.enterprise_id)
    response = anonymous.http.request(
        call(space, voucher_id).request.method,
        call(space, voucher_id).request.url,
        headers=headers,
        content=call(space, voucher_id).request.content,
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="keyledger"'
    body = response.json()
    assert body["Status"] == 401
    assert body["WasSuccessful"] is False
    assert body["Value"] is None


@pytest.mark.parametrize("endpoint", list(ENDPOINTS))
def test_missing_role_is_403(
    shared_deployment: Deployment, space: NexudusTenant, endpoint: str
) -> None:
    role, call = ENDPOINTS[endpoint]
    voucher_id = space.create_id()
    others = tuple(r for r in ALL_ROLES if r != role)
    limited = space.as_user(*add_user_to(shared_deployment, [space.business_id], others))
    response = call(limited, voucher_id)
    assert response.status_code == 403, response.text
    assert response.json()["Status"] == 403
    assert role in response.json()["Message"]
    allowed = space.as_user(*add_user_to(shared_deployment, [space.business_id], (role,)))
    assert call(allowed, voucher_id).status_code == 200


@pytest.mark.parametrize("endpoint", ["get", "replace", "delete", "runcommand"])
def test_records_of_other_businesses_are_404(
    shared_deployment: Deployment, space: NexudusTenant, endpoint: str
) -> None:
    _, call = ENDPOINTS[endpoint]
    foreign_id = space.create_id()
    stranger = make_nexudus_tenant(shared_deployment)
    missing = call(stranger, 2_000_000_000)
    response = call(stranger, foreign_id)
    assert response.status_code == 404
    assert missing.status_code == 404
    assert response.json()["Message"] == missing.json()["Message"] == "Record not found"
    assert space.get(f"/{foreign_id}").status_code == 200


def test_strangers_neither_list_nor_create_in_other_businesses(
    shared_deployment: Deployment, space: NexudusTenant
) -> None:
    voucher_id = space.create_id()
    stranger = make_nexudus_tenant(shared_deployment)
    assert stranger.get().json()["TotalItems"] == 0
    assert stranger.get(AccessToken_Id=str(voucher_id)).json()["Records"] == []
    refused = stranger.http.post(
        NEXUDUS_PATH,
        json={"BusinessId": space.business_id, "AccessCode": "INTRUDER", "MinutesIncluded": 1},
        auth=stranger.auth,
    )
    assert refused.status_code == 400
    assert refused.json()["Errors"][0]["PropertyName"] == "BusinessId"
    assert space.get(AccessToken_AccessCode="INTRUDER").json()["TotalItems"] == 0


def _token(space: NexudusTenant, **form: str) -> httpx.Response:
    return space.http.post("/api/token", data=form)


def test_bearer_flow_with_refresh_rotation(
    shared_deployment: Deployment, space: NexudusTenant
) -> None:
    voucher_id = space.create_id()
    granted = _token(space, grant_type="password", username=space.email, password=space.password)
    assert granted.status_code == 200
    body = granted.json()
    assert set(body) == {"access_token", "token_type", "expires_in", "refresh_token"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 3600

    def with_bearer(token: str) -> httpx.Response:
        return space.http.get(
            f"{NEXUDUS_PATH}/{voucher_id}", headers={"Authorization": f"Bearer {token}"}
        )

    assert with_bearer(body["access_token"]).json()["Id"] == voucher_id
    refreshed = _token(space, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert refreshed.status_code == 200
    fresh = refreshed.json()
    assert with_bearer(fresh["access_token"]).status_code == 200
    assert with_bearer(body["access_token"]).status_code == 401  # the old pair is revoked
    reused = _token(space, grant_type="refresh_token", refresh_token=body["refresh_token"])
    assert reused.status_code == 400
    assert reused.json()["error"] == "invalid_grant"
    # Replaying a rotated refresh token revokes its family: the fresh pair too.
    assert with_bearer(fresh["access_token"]).status_code == 401
    fresh = _token(
        space, grant_type="password", username=space.email, password=space.password
    ).json()
    with shared_deployment.store.write() as conn:
        conn.execute(update(bearer_tokens).values(access_expires_utc=utc_now()))
    expired = with_bearer(fresh["access_token"])
    assert expired.status_code == 401
    assert expired.json()["Message"] == "The bearer token has expired."


@pytest.mark.parametrize(
    ("form", "error"),
    [
        (
            {"grant_type": "password", "username": "x@example.com", "password": "nope-nope"},
            "invalid_grant",
        ),
        ({"grant_type": "password", "username": "x@example.com"}, "invalid_request"),
        ({"grant_type": "client_credentials"}, "unsupported_grant_type"),
        ({"grant_type": "refresh_token", "refresh_token": "unknown"}, "invalid_grant"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
    ],
)
def test_token_errors_follow_rfc_6749(
    space: NexudusTenant, form: dict[str, str], error: str
) -> None:
    response = _token(space, **form)
    assert response.status_code == 400
    assert response.json()["error"] == error
    assert response.json()["error_description"]


def test_unknown_paths_under_spaces_are_404_envelopes(space: NexudusTenant) -> None:
    response = space.http.get("/api/spaces/coworkers", auth=space.auth)
    assert response.status_code == 404
    assert response.json()["WasSuccessful"] is False
    assert space.get("/not-a-number").status_code == 404
