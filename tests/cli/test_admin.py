"""The admin commands, run as a newcomer would: the real ``keyledger`` executable."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keyledger.store.schema import (
    connections,
    events,
    integrations,
    memberships,
    properties,
    users,
)
from tests.support import KEYLEDGER, MEWS_PATH, NEXUDUS_PATH, DatabaseFactory, deploy, ok, run

pytestmark = pytest.mark.slow  # runs the CLI as subprocesses


def _counts(database_url: str) -> dict[str, int]:
    from keyledger.kit.settings import Settings
    from keyledger.store import Store

    store = Store(Settings(database_url=database_url))
    try:
        with store.read() as conn:
            return {
                table.name: conn.execute(select(func.count()).select_from(table)).scalar_one()
                for table in (properties, integrations, connections, users, memberships)
            }
    finally:
        store.dispose()


def test_provisioning_flow_while_the_server_runs(databases: DatabaseFactory) -> None:
    url = databases.new_url()
    # Without the per-worker memory of authenticated tokens, revocation shows at once (with it,
    # within KEYLEDGER_AUTH_CACHE_SECONDS: tests/api/test_auth_cache.py).
    deployment = deploy(url, auth_cache_seconds=0)
    try:
        hotel = ok(
            url, "admin", "add-property", "--name", "Hotel Nord", "--timezone", "Europe/Oslo"
        )
        assert hotel["Name"] == "Hotel Nord"
        assert hotel["TimeZone"] == "Europe/Oslo"
        assert uuid.UUID(hotel["EnterpriseId"])
        chosen = str(uuid.uuid4())
        annex = ok(
            url,
            "admin",
            "add-property",
            "--name",
            "Annex",
            "--enterprise-id",
            chosen,
            "--business-id",
            "4242",
        )
        assert annex["EnterpriseId"] == chosen
        assert annex["BusinessId"] == 4242
        integration = ok(url, "admin", "add-integration", "--name", "Lock vendor")
        client_token = integration["ClientToken"]
        single = ok(
            url,
            "admin",
            "add-access-token",
            "--client-token",
            client_token,
            "--enterprise",
            hotel["EnterpriseId"],
        )
        portfolio = ok(
            url,
            "admin",
            "add-access-token",
            "--client-token",
            client_token,
            "--enterprise",
            hotel["EnterpriseId"],
            "--enterprise",
            chosen,
        )
        assert portfolio["EnterpriseIds"] == [hotel["EnterpriseId"], chosen]
        user = ok(
            url,
            "admin",
            "add-user",
            "--email",
            "Desk@Example.com",
            "--password",
            "correct horse",
            "--business",
            str(hotel["BusinessId"]),
            "--role",
            "AccessToken-List",
            "--role",
            "AccessToken-Read",
        )
        assert user["Email"] == "desk@example.com"
        assert user["Roles"] == ["AccessToken-List", "AccessToken-Read"]

        def get_all(access_token: str) -> httpx.Response:
            return deployment.http.post(
                f"{MEWS_PATH}/getAll",
                json={
                    "ClientToken": client_token,
                    "AccessToken": access_token,
                    "Client": "t",
                    "ServiceOrderIds": [str(uuid.uuid4())],
                    "Limitation": {"Count": 1},
                },
            )

        assert get_all(single["AccessToken"]).status_code == 200
        assert get_all(portfolio["AccessToken"]).status_code == 200
        revoked = ok(url, "admin", "revoke-access-token", "--access-token", single["AccessToken"])
        assert revoked == {"AccessTokenId": single["AccessTokenId"], "Revoked": True}
        assert get_all(single["AccessToken"]).status_code == 401
        assert get_all(portfolio["AccessToken"]).status_code == 200
        ok(url, "admin", "disable-integration", "--client-token", client_token)
        assert get_all(portfolio["AccessToken"]).status_code == 401
        ok(url, "admin", "enable-integration", "--id", str(integration["IntegrationId"]))
        assert get_all(portfolio["AccessToken"]).status_code == 200
        switched = ok(url, "admin", "set-collision-check", "--enterprise", chosen, "--off")
        assert switched == {"EnterpriseId": chosen, "CollisionCheck": False}
        listed = ok(url, "admin", "list-properties")
        assert {p["Name"] for p in listed["Properties"]} == {"Hotel Nord", "Annex"}
        assert {p["Name"]: p["CollisionCheck"] for p in listed["Properties"]} == {
            "Hotel Nord": True,
            "Annex": False,
        }
    finally:
        deployment.close()


def test_users_are_disabled_enabled_and_given_new_passwords_while_the_server_runs(
    databases: DatabaseFactory,
) -> None:
    url = databases.new_url()
    # Checks of passwords are remembered (60 s): changes must take effect at once all the same.
    deployment = deploy(url, password_cache_seconds=60)
    http = deployment.http
    try:
        ok(url, "admin", "add-property", "--name", "Space", "--business-id", "4242")
        email, first = "Staff@Example.com", "first password"
        ok(
            url,
            *("admin", "add-user", "--email", email, "--password", first),
            *("--business", "4242", "--role", "AccessToken-List"),
        )
        email = email.lower()

        def status(auth: Any = None, headers: dict[str, str] | None = None) -> int:
            return http.get(NEXUDUS_PATH, auth=auth, headers=headers).status_code

        assert status(auth=(email, first)) == 200
        grant = http.post(
            "/api/token", data={"grant_type": "password", "username": email, "password": first}
        )
        bearer = {"Authorization": f"Bearer {grant.json()['access_token']}"}
        assert status(headers=bearer) == 200

        disabled = ok(url, "admin", "disable-user", "--email", email)
        assert disabled == {
            "UserId": disabled["UserId"],
            "Email": email,
            "Enabled": False,
            "BearerTokensRevoked": 1,
        }
        assert status(auth=(email, first)) == 401
        assert status(headers=bearer) == 401
        enabled = ok(url, "admin", "enable-user", "--email", email)
        assert (enabled["Enabled"], enabled["BearerTokensRevoked"]) == (True, 0)
        assert status(auth=(email, first)) == 200
        assert status(headers=bearer) == 401  # revoked tokens stay revoked

        assert status(auth=(email, first)) == 200  # remembered now
        changed = ok(url, "admin", "set-password", "--email", email, "--password", "second one")
        assert changed["PasswordChanged"] is True
        assert status(auth=(email, first)) == 401
        assert status(auth=(email, "second one")) == 200
        # Without --password it asks, twice, without echoing.
        asked = subprocess.run(
            [*KEYLEDGER, "admin", "set-password", "--email", email],
            env={**os.environ, "KEYLEDGER_DATABASE_URL": url},
            input="third one!\nthird one!\n",
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert asked.returncode == 0, asked.stderr
        assert "third one!" not in asked.stdout
        assert status(auth=(email, "third one!")) == 200
        with deployment.store.read() as conn:
            kinds = conn.execute(
                select(events.c.kind).where(events.c.kind.like("user.%")).order_by(events.c.id)
            ).scalars()
            assert list(kinds) == [
                "user.created",
                "user.disabled",
                "user.enabled",
                "user.password_changed",
                "user.password_changed",
            ]
    finally:
        deployment.close()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["admin", "add-property", "--name", "X", "--timezone", "Mars/Olympus"],
            "Unknown time zone",
        ),
        (["admin", "add-property", "--name", "X", "--enterprise-id", "nope"], "not a valid UUID"),
        (["admin", "add-property", "--name", "Dup", "--business-id", "777"], "Business 777 exists"),
        (["admin", "add-property"], "Missing option '--name'"),
        (
            [
                "admin",
                "add-access-token",
                "--client-token",
                "unknown",
                "--enterprise",
                "3fa85f64-5717-4562-b3fc-2c963f66afa6",
            ],
            "Unknown client token",
        ),
        (
            [
                "admin",
                "add-user",
                "--email",
                "a@b.c",
                "--password",
                "long enough",
                "--business",
                "777",
                "--role",
                "Admin",
            ],
            "Unknown role Admin",
        ),
        (
            [
                "admin",
                "add-user",
                "--email",
                "a@b.c",
                "--password",
                "short",
                "--business",
                "777",
                "--role",
                "AccessToken-List",
            ],
            "A password has 8 to 1024 characters",
        ),
        (
            [
                "admin",
                "add-user",
                "--email",
                "a@b.c",
                "--password",
                "long enough",
                "--business",
                "9",
                "--role",
                "AccessToken-List",
            ],
            "Unknown business 9",
        ),
        (["admin", "revoke-access-token"], "give exactly one of --access-token and --id"),
        (["admin", "revoke-access-token", "--id", "999"], "Unknown access token"),
        (["admin", "disable-integration", "--id", "999"], "Unknown integration"),
        (["admin", "disable-user", "--email", "nobody@example.com"], "Unknown user"),
        (
            ["admin", "set-password", "--email", "nobody@example.com", "--password", "long enough"],
            "Unknown user",
        ),
        (
            ["admin", "set-password", "--email", "nobody@example.com", "--password", "short"],
            "A password has 8 to 1024 characters",
        ),
        (["admin", "frobnicate"], "No such command 'frobnicate'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(
    sqlite_databases: DatabaseFactory, args: list[str], message: str
) -> None:
    url = sqlite_databases.new_url()
    ok(url, "admin", "add-property", "--name", "Existing", "--business-id", "777")
    before = _counts(url)
    done = run(url, *args)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("keyledger: error: ")
    assert message in lines[0]
    assert _counts(url) == before


def test_secrets_are_stored_only_as_digests(sqlite_databases: DatabaseFactory) -> None:
    url = sqlite_databases.new_url()
    hotel = ok(url, "admin", "add-property", "--name", "H")
    client_token = ok(url, "admin", "add-integration", "--name", "I")["ClientToken"]
    access_token = ok(
        url,
        "admin",
        "add-access-token",
        "--client-token",
        client_token,
        "--enterprise",
        hotel["EnterpriseId"],
    )["AccessToken"]
    ok(
        url,
        "admin",
        "add-user",
        "--email",
        "u@example.com",
        "--password",
        "Sup3r-secret!",
        "--business",
        str(hotel["BusinessId"]),
        "--role",
        "AccessToken-List",
    )
    connection = sqlite3.connect(url.removeprefix("sqlite:///"))
    try:
        text = "\n".join(connection.iterdump())
    finally:
        connection.close()
    for secret in (client_token, access_token, "Sup3r-secret!"):
        assert secret not in text
    assert "$argon2id$" in text
