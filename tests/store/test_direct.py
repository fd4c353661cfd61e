"""store/direct.py: the hot statements run on the driver's cursor write the same rows, in the
same column formats, and read the same values as ``conn.execute`` of the same Core statements.

Two fresh databases of one backend get the same operations, one through SQLAlchemy's execution
path and one through ``Direct``; the raw rows (as the driver returns them, no SQLAlchemy type
processing) of every table touched must be equal, and so must every value read (with its type).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert, select
from sqlalchemy.exc import DBAPIError

from keyledger.domain.events import repository as events
from keyledger.domain.events.models import ActorKind, EventKind
from keyledger.domain.hotspot import repository as hotspot
from keyledger.kit.errors import StoreUnavailable, WriteConflict
from keyledger.kit.inputs import code_key
from keyledger.store import Store
from keyledger.store.direct import Direct, DirectIn
from keyledger.store.schema import credentials, properties
from tests.support import DatabaseFactory, settings_for, voucher_row

NOW = datetime(2026, 12, 1, 20, 15, 7, 654321, tzinfo=UTC)  # microseconds: the store drops them
PROPERTY_UID = uuid.UUID("00000000-0000-4000-8000-00000000beef")
VOUCHER_UID = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
SESSION_UIDS = [uuid.UUID(int=n + 0x1000) for n in range(3)]


class Core:
    """The same ``Direct`` statements through ``conn.execute`` (SQLAlchemy's execution path)."""

    @staticmethod
    def all(statement: Direct, conn: Connection, parameters: dict[str, Any]) -> list[Any]:
        return list(conn.execute(statement.statement, parameters).all())

    @staticmethod
    def rowcount(statement: Direct, conn: Connection, parameters: dict[str, Any]) -> int:
        return int(conn.execute(statement.statement, parameters).rowcount)

    @staticmethod
    def execute(statement: Direct, conn: Connection, parameters: dict[str, Any]) -> None:
        conn.execute(statement.statement, parameters)

    @staticmethod
    def execute_many(statement: Direct, conn: Connection, rows: list[dict[str, Any]]) -> None:
        conn.execute(statement.statement, rows)

    @staticmethod
    def all_in(
        statement: DirectIn, conn: Connection, parameters: dict[str, Any], values: list[Any]
    ) -> list[Any]:
        rows: list[Any] = []
        for start in range(0, len(values), DirectIn.CHUNK):
            sized, bound = statement.sized(parameters, values[start : start + DirectIn.CHUNK])
            rows.extend(conn.execute(sized.statement, bound).all())
        return rows


class Raw:
    @staticmethod
    def all(statement: Direct, conn: Connection, parameters: dict[str, Any]) -> list[Any]:
        return statement.all(conn, parameters)

    @staticmethod
    def rowcount(statement: Direct, conn: Connection, parameters: dict[str, Any]) -> int:
        return statement.rowcount(conn, parameters)

    @staticmethod
    def execute(statement: Direct, conn: Connection, parameters: dict[str, Any]) -> None:
        statement.execute(conn, parameters)

    @staticmethod
    def execute_many(statement: Direct, conn: Connection, rows: list[dict[str, Any]]) -> None:
        statement.execute_many(conn, rows)

    @staticmethod
    def all_in(
        statement: DirectIn, conn: Connection, parameters: dict[str, Any], values: list[Any]
    ) -> list[Any]:
        return statement.all(conn, parameters, values)


def _seed(conn: Connection) -> int:
    conn.execute(
        insert(properties),
        {
            "id": 7,
            "enterprise_id": PROPERTY_UID,
            "business_id": 4242,
            "name": "Direct",
            "timezone": "UTC",
            "created_utc": NOW,
        },
    )
    conn.execute(
        insert(credentials),
        voucher_row(
            property_id=7,
            code="Wifi-Code 1",
            when=NOW,
            id=11,
            uid=VOUCHER_UID,
            minutes_included=90,
            minutes_left=90,
            usage_seconds=17,
            user_limit=3,
            valid_from=NOW - timedelta(days=1),
            valid_to=NOW + timedelta(days=30),
        ),
    )
    return 11


def _scenario(conn: Connection, way: type[Core] | type[Raw]) -> list[Any]:
    """A group of session starts' statements (and the rarer ones), through ``way``; what they
    returned."""
    seen: list[Any] = []
    vouchers = {"property_id": 7}
    live = hotspot._LIVE_VOUCHER
    voucher = way.all(live, conn, {**vouchers, "code_key": code_key("wifi-code 1")})
    seen.append(voucher)
    seen.append(way.all(live, conn, {**vouchers, "code_key": "nothing"}))
    # the IN list's values are bound as the column's type (a UUID: hex on SQLite), and a list
    # longer than a chunk is read in chunks
    by_uid = DirectIn(credentials.c.uid, lambda uid_in: select(credentials.c.id).where(uid_in))
    seen.append(way.all_in(by_uid, conn, {}, [uuid.UUID(int=n) for n in range(1500)]))
    seen.append(way.all_in(by_uid, conn, {}, [uuid.UUID(int=1), VOUCHER_UID]))
    credential_id = voucher[0].id
    seen.append(
        way.execute_many(
            hotspot._INSERT_SESSION,
            conn,
            [
                {
                    "uid": uid,
                    "credential_id": credential_id,
                    "device_id": f"aa:bb:cc:dd:ee:0{number} ünï",
                    "started_utc": started,
                    "last_report_utc": started,
                }
                for number, (uid, started) in enumerate(
                    zip(SESSION_UIDS, [NOW - timedelta(hours=2), NOW, NOW], strict=True)
                )
            ],
        )
    )
    idle_since = NOW - timedelta(minutes=10)
    seen.append(way.all_in(hotspot._OPEN_SESSIONS_OF, conn, {}, [credential_id, 999]))
    seen.append(
        way.rowcount(
            hotspot._END_IDLE,
            conn,
            {"voucher_id": credential_id, "idle_since": idle_since, "now": NOW},
        )
    )
    seen.append(way.all_in(hotspot._OPEN_SESSIONS_OF, conn, {}, [credential_id]))
    seen.append(
        way.execute_many(
            hotspot._TOUCH_DIRECT,
            conn,
            [
                {"session_id": 2, "now": NOW + timedelta(seconds=3)},
                {"session_id": 3, "now": NOW + timedelta(seconds=3)},
            ],
        )
    )
    seen.append(
        way.execute_many(
            hotspot._MARK_ACCESS,
            conn,
            [{"credential_id": credential_id, "now": NOW + timedelta(seconds=4)}],
        )
    )
    seen.append(
        way.execute_many(
            events._APPEND_ONE,
            conn,
            [
                {
                    "occurred_utc": NOW,
                    "property_id": 7,
                    "kind": EventKind.HOTSPOT_SESSION_STARTED.value,
                    "actor_kind": ActorKind.NAS.value,
                    "actor_id": 3,
                    "actor_label": "NAS 3",
                    "actor_token_id": None,
                    "credential_uid": credential_uid,
                    "resource_uid": resource_uid,
                    "outcome": "Granted",
                    "details": details,
                }
                for details, credential_uid, resource_uid in [
                    (
                        {"device": "ab ü", "session": str(SESSION_UIDS[1]), "n": [1, 2.5, None]},
                        VOUCHER_UID,
                        None,
                    ),
                    (None, None, uuid.UUID(int=5)),
                    ({}, None, None),
                ]
            ],
        )
    )
    seen.append(way.all(live, conn, {**vouchers, "code_key": code_key("WIFI-CODE 1")}))
    return seen


def _dump(conn: Connection) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of the tables written, as the driver returns them."""
    return {
        table: [
            tuple(row)
            for row in conn.exec_driver_sql(f"SELECT * FROM {table} ORDER BY id")  # noqa: S608
        ]
        for table in ("hotspot_sessions", "events", "credentials")
    }


def _typed(values: list[Any]) -> list[Any]:
    """Values with their types, so 1 and True or a str and a UUID do not compare equal."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, list):
            out.append([tuple((type(v), v) for v in row) for row in value])
            out.append(
                [tuple(row._fields if hasattr(row, "_fields") else row.keys()) for row in value]
            )
        else:
            out.append((type(value), value))
    return out


@pytest.fixture
def two_stores(databases: DatabaseFactory) -> Iterator[tuple[Store, Store]]:
    first = Store(settings_for(databases.new_url()))
    second = Store(settings_for(databases.new_url()))
    yield first, second
    first.dispose()
    second.dispose()


def test_direct_writes_and_reads_what_core_does(two_stores: tuple[Store, Store]) -> None:
    core_store, raw_store = two_stores
    results = {}
    dumps = {}
    ways: list[tuple[str, Store, type[Core] | type[Raw]]] = [
        ("core", core_store, Core),
        ("raw", raw_store, Raw),
    ]
    for name, store, way in ways:
        with store.write() as conn:
            _seed(conn)
            results[name] = _scenario(conn, way)
        with store.read() as conn:
            dumps[name] = _dump(conn)
    assert len(dumps["raw"]["hotspot_sessions"]) == 3
    assert len(dumps["raw"]["events"]) == 3
    assert dumps["raw"] == dumps["core"]
    assert _typed(results["raw"]) == _typed(results["core"])
    # what the scenario saw: the voucher, no voucher, 3 inserts, 3 open (1 idle), 1 ended, 2 open
    raw = results["raw"]
    assert len(raw[0]) == 1 and raw[0][0].uid == VOUCHER_UID
    assert raw[0][0].valid_to == NOW.replace(microsecond=0) + timedelta(days=30)
    assert raw[1] == []
    assert raw[2] == []  # 1,500 uids in two chunks, none a credential's
    assert [row.id for row in raw[3]] == [11]
    raw = raw[:2] + raw[4:]
    assert raw[2] is None
    assert [row.last_report_utc for row in raw[3]] == [
        (NOW - timedelta(hours=2)).replace(microsecond=0),
        NOW.replace(microsecond=0),
        NOW.replace(microsecond=0),
    ]
    assert raw[4] == 1
    assert [row.uid for row in raw[5]] == SESSION_UIDS[1:]
    assert raw[6:9] == [None, None, None]
    assert [row.uid for row in raw[9]] == [VOUCHER_UID]


def test_direct_errors_are_raised_as_sqlalchemy_raises_them(
    two_stores: tuple[Store, Store],
) -> None:
    """A driver error is a ``DBAPIError`` whose text holds no parameter (a duplicate uid), so the
    store maps it as it maps one from ``conn.execute``."""
    store, _ = two_stores
    secret_device = "device-that-must-not-leak"

    def twice() -> None:
        with store.write() as conn:
            credential_id = _seed(conn)
            for _ in range(2):
                hotspot.insert_sessions(
                    conn, [(SESSION_UIDS[0], credential_id, secret_device)], now=NOW
                )

    with pytest.raises(DBAPIError) as raised:
        twice()
    assert secret_device not in str(raised.value)
    assert not isinstance(raised.value, (StoreUnavailable, WriteConflict))
    with store.read() as conn:
        assert _dump(conn)["hotspot_sessions"] == []  # rolled back
