"""`keyledger admin add-nas`, `list-nas`, `remove-nas` on each database: one JSON object each,
the secret sealed at rest when a key is set and never printed, bad input refused."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from keyledger.store import Store
from keyledger.store.schema import nas_clients
from tests.support import DatabaseFactory, ok, run, sealing_for, settings_for


def test_add_list_and_remove_nas(
    databases: DatabaseFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = databases.new_url()
    env_key = sealing_for(url).get("encryption_key")
    if env_key is not None:
        monkeypatch.setenv("KEYLEDGER_ENCRYPTION_KEY", env_key)
    business = ok(url, "admin", "add-property", "--name", "Cowork")["BusinessId"]
    args = ("admin", "add-nas", "--business", str(business), "--secret", "s3cret-of-the-nas")
    first = ok(url, *args, "--address", "192.0.2.10", "--name", "Lobby")
    second = ok(
        url,
        *args,
        "--address",
        "198.51.100.0/24",
        "--coa-port",
        "1700",
        "--allow-missing-message-authenticator",
    )
    assert first == {
        "NasId": first["NasId"],
        "BusinessId": business,
        "Address": "192.0.2.10/32",
        "Name": "Lobby",
        "CoaPort": 3799,
        "RequireMessageAuthenticator": True,
    }
    assert (second["Address"], second["CoaPort"], second["RequireMessageAuthenticator"]) == (
        "198.51.100.0/24",
        1700,
        False,
    )
    listed = run(url, "admin", "list-nas")
    assert listed.returncode == 0
    assert "s3cret" not in listed.stdout
    assert [n["NasId"] for n in ok(url, "admin", "list-nas")["Nas"]] == [
        first["NasId"],
        second["NasId"],
    ]
    store = Store(settings_for(url))
    with store.read() as conn:
        rows = conn.execute(select(nas_clients.c.secret, nas_clients.c.secret_sealed)).all()
    store.dispose()
    if env_key is None:
        assert {row[0] for row in rows} == {"s3cret-of-the-nas"}
    else:  # sealed like door values: nothing in clear
        assert all(row[0] == "" and row[1] for row in rows)
        assert all(b"s3cret" not in row[1] for row in rows)
    assert ok(url, "admin", "remove-nas", "--id", str(first["NasId"])) == {
        "NasId": first["NasId"],
        "Removed": True,
    }
    assert len(ok(url, "admin", "list-nas")["Nas"]) == 1
    for bad in (
        ("admin", "remove-nas", "--id", str(first["NasId"])),
        (*args, "--address", "not-an-address"),
        ("admin", "add-nas", "--business", "999999999", "--address", "::1", "--secret", "x"),
    ):
        refused = run(url, *bad)
        assert refused.returncode == 2, refused.stdout
        assert refused.stderr.startswith("keyledger: error:")
