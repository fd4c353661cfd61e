"""A dump of the database holds no secret in clear: no ClientToken, AccessToken, password, bearer
or refresh token (they are kept as keyed digests and Argon2 hashes)."""

from __future__ import annotations

from tests.support import (
    DatabaseFactory,
    deploy,
    dump_database,
    make_nexudus_tenant,
    make_tenant,
    token_parameters,
)


def test_a_database_dump_holds_no_secret_in_clear(databases: DatabaseFactory) -> None:
    url = databases.new_url()
    deployment = deploy(url)
    try:
        tenant = make_tenant(deployment)
        space = make_nexudus_tenant(deployment)
        grant = deployment.http.post(
            "/api/token",
            data={"grant_type": "password", "username": space.email, "password": space.password},
        )
        assert grant.status_code == 200
        tokens = grant.json()
        assert (
            tenant.mews("add", ResourceAccessTokenParameters=[token_parameters()]).status_code
            == 200
        )
        listed = deployment.http.get(
            "/api/spaces/accesstokens",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
        )
        assert listed.status_code == 200
        secrets = {
            "ClientToken": tenant.client_token,
            "AccessToken": tenant.access_token,
            "password": space.password,
            "bearer token": tokens["access_token"],
            "refresh token": tokens["refresh_token"],
        }
    finally:
        deployment.close()
    dump = dump_database(url)
    assert "credentials" in dump  # the dump really holds the tables
    for name, secret in secrets.items():
        assert secret not in dump, f"the {name} is stored in clear"
        assert secret.lower() not in dump.lower(), f"the {name} is stored in clear (case)"
