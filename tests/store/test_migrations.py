"""Migrations create exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, insert, inspect, select, text
from sqlalchemy.exc import IntegrityError

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


def test_0016_keys_radius_sessions_by_connection_and_session_and_back(
    databases: DatabaseFactory,
) -> None:
    """After 0016 two sessions may each keep a row under one connection's Acct-Session-Id (the
    same again is refused); undoing it keeps the newest row of each connection."""
    store = Store(Settings(database_url=databases.new_url()))
    try:
        prop = add_property(store, name="Sessions under one id")
        nas = add_nas(
            store, business_id=prop.business_id, address="192.0.2.8", secret="a shared secret"
        )
        now = utc_now()
        sessions = [uuid.uuid4(), uuid.uuid4()]

        def row(session: uuid.UUID, seconds: int) -> dict[str, object]:
            return {
                "nas_id": nas.id,
                "acct_session_id": "0001",
                "session_uid": session,
                "user_name": "CODE",
                "calling_station_id": "device",
                "nas_address": "192.0.2.8",
                "session_time": seconds,
                "stopped": False,
                "disconnect_attempts": 0,
                "updated_utc": now,
            }

        with store.write() as conn:
            conn.execute(insert(radius_sessions).values(row(sessions[0], 600)))
            conn.execute(insert(radius_sessions).values(row(sessions[1], 60)))
        with pytest.raises(IntegrityError), store.write() as conn:
            conn.execute(insert(radius_sessions).values(row(sessions[1], 90)))
        downgrade(store.engine, "0015")
        with store.read() as conn:
            kept = conn.execute(
                select(radius_sessions.c.session_uid, radius_sessions.c.session_time)
            ).all()
        assert [(uid, seconds) for uid, seconds in kept] == [(sessions[1], 60)]
        upgrade(store.engine)
        assert is_current(store.engine)
    finally:
        store.dispose()


# What the hot queries ask of the indexes 0015 made partial (hotspot/repository.py's open
# sessions of a voucher, events/repository.py's reader and resource queries).
_PLANNED = [
    (
        "ix_hotspot_sessions_open",
        "SELECT id, last_report_utc FROM hotspot_sessions "
        "WHERE credential_id = :credential_id AND ended_utc IS NULL",
    ),
    ("ix_events_resource", "SELECT id FROM events WHERE resource_uid = :uid ORDER BY id DESC"),
    (
        "ix_events_reader",
        "SELECT count(*) FROM events WHERE resource_uid = :uid AND kind = 'access.checked' "
        "AND occurred_utc >= :since",
    ),
    (  # the door view's lock-out, correlated with the reader (access/repository.py)
        "ix_events_reader",
        "SELECT (SELECT max(e.occurred_utc) FROM events e WHERE e.resource_uid = r.uid "
        "AND e.property_id = r.property_id AND e.kind = 'reader.throttled' "
        "AND e.occurred_utc > :since) FROM resources r WHERE r.property_id = 1",
    ),
]


#: The indexes 0015 made partial, and their predicates (as ``_normal`` spells them).
_PARTIAL = {
    ("hotspot_sessions", "ix_hotspot_sessions_open"): "ended_utc is null",
    ("events", "ix_events_resource"): "resource_uid is not null",
    ("events", "ix_events_reader"): "resource_uid is not null",
}


def _plan(conn: Connection, sql: str) -> str:
    parameters = {"credential_id": 1, "uid": str(uuid.uuid4()), "since": "2026-01-01"}
    if conn.dialect.name == "sqlite":
        rows = conn.execute(text(f"EXPLAIN QUERY PLAN {sql}"), parameters).all()
        return " ".join(str(row[-1]) for row in rows)
    conn.exec_driver_sql("SET LOCAL enable_seqscan = off")  # tiny tables: is the index usable
    sql = sql.replace(":since", "CAST(:since AS timestamptz)").replace(":uid", "CAST(:uid AS uuid)")
    return " ".join(str(row[0]) for row in conn.execute(text(f"EXPLAIN {sql}"), parameters))


def _index(conn: Connection, table: str, name: str) -> tuple[list[str], str | None]:
    """An index's columns and its predicate (None: the whole table)."""
    found = next(index for index in inspect(conn).get_indexes(table) if index["name"] == name)
    where = found.get("dialect_options", {}).get(f"{conn.dialect.name}_where")
    return [str(column) for column in found["column_names"]], None if where is None else str(where)


def _normal(predicate: str | None) -> str | None:
    return None if predicate is None else predicate.strip("()").lower()


def test_0015_partial_indexes_serve_the_hot_queries_and_back(databases: DatabaseFactory) -> None:
    """After 0015 the open-sessions index holds only ``credential_id`` and the two resource
    indexes of the events only events of a resource, and each query that used them still does;
    undoing it restores the full indexes."""
    store = Store(Settings(database_url=databases.new_url()))
    try:
        with store.read() as conn:
            columns, _ = _index(conn, "hotspot_sessions", "ix_hotspot_sessions_open")
            assert columns == ["credential_id"]
            for (table, name), predicate in _PARTIAL.items():
                assert _normal(_index(conn, table, name)[1]) == predicate, name
                # compare_metadata does not compare predicates: schema.py must declare the same
                declared = next(ix for ix in metadata.tables[table].indexes if ix.name == name)
                assert _normal(str(declared.dialect_options[conn.dialect.name]["where"])) == (
                    predicate
                ), name
            for name, sql in _PLANNED:
                assert name in _plan(conn, sql), name
        downgrade(store.engine, "0014")
        with store.read() as conn:
            assert _index(conn, "hotspot_sessions", "ix_hotspot_sessions_open") == (
                ["credential_id", "ended_utc", "last_report_utc"],
                None,
            )
            assert _index(conn, "events", "ix_events_reader") == (
                ["resource_uid", "kind", "occurred_utc"],
                None,
            )
            assert _index(conn, "events", "ix_events_resource") == (["resource_uid", "id"], None)
        upgrade(store.engine)
        assert is_current(store.engine)
        with store.read() as conn:
            for name, sql in _PLANNED:
                assert name in _plan(conn, sql), name
    finally:
        store.dispose()
