"""A dump of the database holds no secret in clear: no ClientToken, AccessToken, password, bearer
or refresh token (they are kept as keyed digests and Argon2 hashes)."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

from tests.support import (
    DatabaseFactory,
    deploy,
    make_nexudus_tenant,
    make_tenant,
    need,
    token_parameters,
)


def _dump(url: str) -> str:
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            text = "\n".join(conn.iterdump())
        with open(path, "rb") as raw:  # the file itself too, free pages included
            return text + raw.read().decode("latin-1")
    need(shutil.which("pg_dump"), "pg_dump is needed for the PostgreSQL dump")
    return subprocess.run(
        ["pg_dump", "--data-only", url], capture_output=True, text=True, check=True
    ).stdout


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
    dump = _dump(url)
    assert "credentials" in dump  # the dump really holds the tables
    for name, secret in secrets.items():
        assert secret not in dump, f"the {name} is stored in clear"
        assert secret.lower() not in dump.lower(), f"the {name} is stored in clear (case)"
