"""Migrations create exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, select

from keyledger.domain.callers.users import add_user
from keyledger.domain.nas.service import add_nas
from keyledger.domain.properties.service import add_property
from keyledger.kit.clock import utc_now
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import (
    current_revision,
    downgrade,
    head_revision,
    is_current,
    upgrade,
)
from keyledger.store.schema import SEARCH_OBJECTS, bearer_tokens, metadata, radius_sessions
from tests.support import DatabaseFactory

PASSWORD = "a long password"


def test_migrated_schema_equals_the_declared_schema(databases: DatabaseFactory) -> None:
    store = Store(Settings(database_url=databases.new_url()))
    try:
        assert current_revision(store.engine) == head_revision()
        assert is_current(store.engine)
        upgrade(store.engine)  # applying again changes nothing
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={"include_object": lambda _o, name, *_: name not in SEARCH_OBJECTS},
            )
            differences = compare_metadata(context, metadata)
        assert differences == []
    finally:
        store.dispose()


def test_0008_makes_each_existing_bearer_pair_a_family_of_its_own(
    databases: DatabaseFactory,
) -> None:
    """Pairs issued before refresh families each become a family of their own (a replay then
    revokes only what descended from that pair)."""
    store = Store(Settings(database_url=databases.new_url()))
    try:
        prop = add_property(store, name="Before families")
        user_id = add_user(
            store,
            email="old@example.com",
            password=PASSWORD,
            business_ids=[prop.business_id],
            roles=["AccessToken-List"],
        )["UserId"]
        now = utc_now()
        downgrade(store.engine, "0007")  # 0009, then 0008, undone by their own downgrades
        with store.write() as conn:
            for n in range(3):
                conn.execute(
                    insert(bearer_tokens).values(
                        user_id=user_id,
                        access_digest=f"a{n}",
                        refresh_digest=f"r{n}",
                        access_expires_utc=now,
                        refresh_expires_utc=now,
                        created_utc=now,
                    )
                )
        upgrade(store.engine)
        assert is_current(store.engine)
        with store.read() as conn:
            families = conn.execute(select(bearer_tokens.c.family_uid)).scalars().all()
        assert len(families) == 3
        assert len(set(families)) == 3
        assert None not in families
    finally:
        store.dispose()


def test_0010_gives_every_existing_access_token_every_scope(databases: DatabaseFactory) -> None:
    """Tokens made before scopes keep working exactly as before: they hold all seven."""
    from keyledger.domain.callers.integrations import (
        add_access_token,
        add_integration,
        authenticate_access_token,
    )
    from keyledger.domain.callers.permissions import EVERY_PERMISSION
    from keyledger.store.schema import connections

    store = Store(Settings(database_url=databases.new_url()))
    try:
        prop = add_property(store, name="Before scopes")
        client = add_integration(store, name="old").secret
        issued = add_access_token(
            store, client_token=client, enterprise_ids=[prop.enterprise_id], scopes=["hotspot"]
        )
        downgrade(store.engine, "0009")  # the token as it was before scopes: no column
        upgrade(store.engine)
        assert is_current(store.engine)
        with store.read() as conn:
            assert conn.execute(select(connections.c.scopes)).scalar_one() == [
                "credentials:read",
                "credentials:write",
                "resources:read",
                "resources:write",
                "access:check",
                "hotspot",
                "events:read",
            ]
        caller = authenticate_access_token(store, access_token=issued.secret)
        assert caller.permissions == EVERY_PERMISSION
    finally:
        store.dispose()


def test_0014_keys_radius_sessions_by_connection_and_back(databases: DatabaseFactory) -> None:
    """Rows made before 0014 keep their address; after it two devices of one NAS record may
    share an Acct-Session-Id; undoing it keeps the newest row of each (NAS, Acct-Session-Id)."""
    store = Store(Settings(database_url=databases.new_url()))
    try:
        prop = add_property(store, name="Before connections")
        nas = add_nas(
            store, business_id=prop.business_id, address="192.0.2.0/29", secret="a shared secret"
        )
        now = utc_now()

        def row(address: str) -> dict[str, object]:
            return {
                "nas_id": nas.id,
                "acct_session_id": "0001",
                "session_uid": uuid.uuid4(),
                "user_name": "CODE",
                "calling_station_id": address,
                "nas_address": address,
                "session_time": 0,
                "stopped": False,
                "disconnect_attempts": 0,
                "updated_utc": now,
            }

        downgrade(store.engine, "0013")
        with store.write() as conn:
            conn.execute(insert(radius_sessions).values(row("192.0.2.1")))
        upgrade(store.engine)
        assert is_current(store.engine)
        with store.write() as conn:
            conn.execute(insert(radius_sessions).values(row("192.0.2.2")))
        with store.read() as conn:
            addresses = conn.execute(select(radius_sessions.c.nas_address)).scalars().all()
        assert sorted(addresses) == ["192.0.2.1", "192.0.2.2"]
        downgrade(store.engine, "0013")
        with store.read() as conn:
            addresses = conn.execute(select(radius_sessions.c.nas_address)).scalars().all()
        assert addresses == ["192.0.2.2"]
        upgrade(store.engine)
        assert is_current(store.engine)
    finally:
        store.dispose()
