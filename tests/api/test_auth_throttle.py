"""Failed authentication is throttled in every dialect, each in its own throttling shape with
Retry-After: failed secrets per client address (valid ones always pass), passwords per e-mail and
address (before the password is checked); a success counts nothing. tests/api/test_lockouts.py
proves that nobody can lock out someone else."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest

from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, add_user
from keyledger.web.auth_throttle import address_key
from tests.support import (
    MEWS_PATH,
    DatabaseFactory,
    Deployment,
    Tenant,
    deploy,
    make_tenant,
    token_parameters,
    two_instances_sharing_redis,
)

PASSWORD = "correct horse battery"


@pytest.fixture
def guarded(databases: DatabaseFactory) -> Iterator[Deployment]:
    deployment = deploy(
        databases.new_url(),
        auth_failures_per_caller=3,
        auth_failures_per_address=3,
        auth_failure_window_seconds=60,
    )
    yield deployment
    deployment.close()


def _user(deployment: Deployment, tenant: Tenant, email: str) -> None:
    add_user(
        deployment.store,
        email=email,
        password=PASSWORD,
        business_ids=[tenant.business_id],
        roles=ACCESS_TOKEN_ROLES,
    )


def _retry_after(response: httpx.Response) -> int:
    return int(response.headers["Retry-After"])


def test_mews_answers_429_to_an_address_past_three_failures_and_the_right_tokens_pass(
    guarded: Deployment,
) -> None:
    tenant = make_tenant(guarded)
    wrong = {**tenant.credentials, "ClientToken": "not-the-client-token"}
    body = {"ResourceAccessTokenParameters": [token_parameters()]}
    for _ in range(3):
        assert guarded.http.post(f"{MEWS_PATH}/add", json={**wrong, **body}).status_code == 401
    refused = guarded.http.post(f"{MEWS_PATH}/add", json={**wrong, **body})
    assert refused.status_code == 429
    assert 1 <= _retry_after(refused) <= 60
    assert refused.json()["Message"].startswith("Too many failed authentications")
    assert set(refused.json()) == {"Message", "RequestId", "Details"}
    # The right tokens are checked first and pass: a secret cannot be guessed.
    passed = guarded.http.post(f"{MEWS_PATH}/add", json={**tenant.credentials, **body})
    assert passed.status_code == 200


def test_successes_count_nothing(guarded: Deployment) -> None:
    tenant = make_tenant(guarded)
    for _ in range(6):
        listed = tenant.mews("getAll", ServiceOrderIds=[str(uuid.uuid4())], Limitation={"Count": 1})
        assert listed.status_code == 200
        assert listed.json()["ResourceAccessTokens"] == []
        assert (
            tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()]).status_code
            == 200
        )


def test_nexudus_basic_and_token_grant_share_the_users_count(guarded: Deployment) -> None:
    tenant = make_tenant(guarded)
    _user(guarded, tenant, "desk@example.com")
    wrong = ("desk@example.com", "wrong password!")
    assert guarded.http.get("/api/spaces/accesstokens", auth=wrong).status_code == 401
    assert (
        guarded.http.post(
            "/api/token",
            data={"grant_type": "password", "username": "Desk@Example.com", "password": "nope"},
        ).status_code
        == 400
    )
    assert guarded.http.get("/api/spaces/accesstokens", auth=wrong).status_code == 401
    refused = guarded.http.get("/api/spaces/accesstokens", auth=("desk@example.com", PASSWORD))
    assert refused.status_code == 409
    assert 1 <= _retry_after(refused) <= 60
    assert refused.json()["Message"].startswith("Too many failed authentications")
    grant = guarded.http.post(
        "/api/token",
        data={"grant_type": "password", "username": "desk@example.com", "password": PASSWORD},
    )
    assert grant.status_code == 409
    assert grant.json()["error"] == "too_many_attempts"
    assert 1 <= _retry_after(grant) <= 60
    # Nexudus' own header spelling is the same claimed user.
    encoded = base64.b64encode(f"desk@example.com:{PASSWORD}".encode()).decode()
    spelled = guarded.http.get(
        "/api/spaces/accesstokens", headers={"Authentication": f"Basic {encoded}"}
    )
    assert spelled.status_code == 409


def test_api_v1_bearer_tokens_are_throttled_with_429(guarded: Deployment) -> None:
    for n in range(3):
        wrong = guarded.http.get(
            "/api/v1/resources", headers={"Authorization": f"Bearer guessed-token-{n}"}
        )
        assert wrong.status_code == 401
    refused = guarded.http.get(
        "/api/v1/resources", headers={"Authorization": "Bearer guessed-token"}
    )
    assert refused.status_code == 429
    assert refused.json()["Error"] == "TooManyFailures"
    assert 1 <= _retry_after(refused) <= 60
    tenant = make_tenant(guarded)
    bearer = {"Authorization": f"Bearer {tenant.access_token}"}
    assert guarded.http.get("/api/v1/resources", headers=bearer).status_code == 200


@pytest.mark.redis
def test_two_instances_sharing_redis_share_the_failure_count(
    sqlite_databases: DatabaseFactory,
) -> None:
    with two_instances_sharing_redis(
        sqlite_databases.new_url(), auth_failures_per_caller=2, auth_failure_window_seconds=60
    ) as (first, second):
        tenant = make_tenant(first)
        _user(first, tenant, "shared@example.com")
        wrong = ("shared@example.com", "not the password")
        assert first.http.get("/api/spaces/accesstokens", auth=wrong).status_code == 401
        assert second.http.get("/api/spaces/accesstokens", auth=wrong).status_code == 401
        right = ("shared@example.com", PASSWORD)
        assert first.http.get("/api/spaces/accesstokens", auth=right).status_code == 409
        assert second.http.get("/api/spaces/accesstokens", auth=right).status_code == 409


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:7:1::1", "2001:db8:7:1::/64"),
        ("2001:db8:7:1:ffff:ffff:ffff:ffff", "2001:db8:7:1::/64"),
        ("2001:db8:7:2::1", "2001:db8:7:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("testclient", "testclient"),
        (None, ""),
    ],
)
def test_the_brake_counts_an_ipv6_client_by_its_64(address: str | None, counted_as: str) -> None:
    """A host is given a whole IPv6 /64 and picks any address in it: the pair and address keys
    use the /64 (an IPv4-mapped address is its IPv4 address)."""
    assert address_key(address) == counted_as
