"""A worker remembers an authenticated AccessToken for KEYLEDGER_AUTH_CACHE_SECONDS: revocation and
disabling take effect within that time, and at once with 0."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from keyledger.domain.callers.integrations import revoke_access_token, set_integration_enabled
from tests.support import DatabaseFactory, Deployment, deploy, make_tenant, token_parameters


@pytest.fixture
def remembering(sqlite_databases: DatabaseFactory) -> Iterator[Deployment]:
    deployment = deploy(sqlite_databases.new_url(), auth_cache_seconds=0.5)
    yield deployment
    deployment.close()


def test_a_revoked_token_works_until_the_memory_expires_then_is_refused(
    remembering: Deployment,
) -> None:
    tenant = make_tenant(remembering)
    bearer = {"Authorization": f"Bearer {tenant.access_token}"}
    assert tenant.http.get("/api/v1/resources", headers=bearer).status_code == 200
    revoke_access_token(remembering.store, access_token=tenant.access_token)
    assert tenant.http.get("/api/v1/resources", headers=bearer).status_code == 200
    time.sleep(0.6)
    refused = tenant.http.get("/api/v1/resources", headers=bearer)
    assert refused.status_code == 401
    assert refused.json()["Message"] == "The access token has been revoked."


def test_a_disabled_integration_is_refused_by_mews_once_the_memory_expires(
    remembering: Deployment,
) -> None:
    tenant = make_tenant(remembering)
    added = tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()])
    assert added.status_code == 200
    set_integration_enabled(remembering.store, enabled=False, client_token=tenant.client_token)
    time.sleep(0.6)
    refused = tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()])
    assert refused.status_code == 401
    assert refused.json()["Message"].startswith("The integration is disabled")


def test_with_no_memory_revocation_is_immediate(sqlite_databases: DatabaseFactory) -> None:
    deployment = deploy(sqlite_databases.new_url(), auth_cache_seconds=0)
    try:
        tenant = make_tenant(deployment)
        bearer = {"Authorization": f"Bearer {tenant.access_token}"}
        assert tenant.http.get("/api/v1/resources", headers=bearer).status_code == 200
        revoke_access_token(deployment.store, access_token=tenant.access_token)
        assert tenant.http.get("/api/v1/resources", headers=bearer).status_code == 401
    finally:
        deployment.close()
