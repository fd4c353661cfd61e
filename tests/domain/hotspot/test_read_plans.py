"""The reads of a hotspot start keep their plans at a realistic size, on both databases.

A start (HTTP or RADIUS) reads, under a write transaction, its voucher by code, the voucher's
open sessions and its guessing budgets. Each of those is an index lookup of a few rows; the
same read as a walk of a property's vouchers, of every session or of every budget would cost
milliseconds a start at a million rows (benchmarks/README.md, "a group's starts as one batch":
PostgreSQL planned a voucher read of several codes as a walk of the property's live vouchers,
or through the trigram index, 10-25 ms against ~0.1 ms). So each statement as the driver gets
it (``Direct.sent``: the very SQL and parameters) is explained on tables of some thousands of
rows, two properties holding the same codes, before and after ``ANALYZE``, and must search its
index rather than scan.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert

from keyledger.domain.guessing import repository as guessing
from keyledger.domain.hotspot import repository as hotspot
from keyledger.kit.inputs import code_key
from keyledger.store import Store
from keyledger.store.direct import Direct
from keyledger.store.schema import credentials, guess_counts, hotspot_sessions, properties
from tests.support import DatabaseFactory, settings_for, voucher_row

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
VOUCHERS = 3000  # live ones per property, as many withdrawn with the same codes
SESSIONS_PER_VOUCHER = 4  # ended ones, of property 1's vouchers
BUDGET_SUBJECTS = 1000  # NAS and tokens, a count in each of 20 windows


def _voucher(property_id: int, n: int, *, deleted: bool) -> dict[str, Any]:
    return voucher_row(
        property_id=property_id,
        code=f"Code-{n:05d}",
        when=NOW,
        uid=uuid.uuid4(),
        minutes_included=60,
        minutes_left=60,
        usage_seconds=0,
        user_limit=2,
        deleted_utc=NOW if deleted else None,
    )


def _seed(conn: Connection) -> None:
    for property_id in (1, 2):
        conn.execute(
            insert(properties),
            {
                "id": property_id,
                "enterprise_id": uuid.uuid4(),
                "business_id": 5000 + property_id,
                "name": f"Plans {property_id}",
                "timezone": "UTC",
                "created_utc": NOW,
            },
        )
        conn.execute(
            insert(credentials),
            [
                _voucher(property_id, n, deleted=deleted)
                for n in range(VOUCHERS)
                for deleted in (False, True)
            ],
        )
    # Property 1's vouchers are ids 1..2*VOUCHERS (live ones odd): a past of ended sessions,
    # and an open one on a few.
    sessions = [
        {
            "uid": uuid.uuid4(),
            "credential_id": voucher_id,
            "device_id": f"device-{k}",
            "started_utc": NOW - timedelta(days=k + 1),
            "last_report_utc": NOW - timedelta(days=k + 1),
            "ended_utc": None if k == 0 and voucher_id % 50 == 1 else NOW - timedelta(days=k),
            "end_reason": None if k == 0 and voucher_id % 50 == 1 else "Ended",
        }
        for voucher_id in range(1, 2 * VOUCHERS, 2)
        for k in range(SESSIONS_PER_VOUCHER)
    ]
    conn.execute(insert(hotspot_sessions), sessions)
    conn.execute(
        insert(guess_counts),
        [
            {"subject": f"nas:{n}", "window_start": NOW - timedelta(days=day), "misses": n % 7}
            for n in range(BUDGET_SUBJECTS)
            for day in range(20)
        ],
    )


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    made = Store(settings_for(databases.new_url()))
    with made.write() as conn:
        _seed(conn)
    yield made
    made.dispose()


def _explain(conn: Connection, statement: Direct, parameters: dict[str, Any]) -> str:
    sql, sent = statement.sent(conn, parameters)
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        if conn.dialect.name == "sqlite":
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", sent)
            return " | ".join(str(row[-1]) for row in cursor.fetchall())
        cursor.execute(f"EXPLAIN {sql}", sent)
        return " | ".join(str(row[0]) for row in cursor.fetchall())
    finally:
        cursor.close()


def _searches(plan: str, table: str, index: str, dialect: str) -> None:
    """``plan`` reads ``table`` through ``index`` and never walks it (nor another index)."""
    if dialect == "sqlite":
        assert f"SEARCH {table} USING INDEX {index} (" in plan, plan
        assert f"SCAN {table}" not in plan, plan
    else:
        # "Index Scan using <index> on <table>", or a bitmap scan "on <index>" feeding it
        assert f"using {index} on {table}" in plan or f"Bitmap Index Scan on {index}" in plan, plan
        assert f"Seq Scan on {table}" not in plan, plan
        assert "trgm" not in plan and "_search" not in plan, plan


def _plans(conn: Connection) -> dict[str, str]:
    in_list = list(range(1, 33, 2))  # 16 live vouchers of property 1 (sized to 16)
    sessions, sessions_bound = hotspot._OPEN_SESSIONS_OF.sized({}, in_list)
    many, many_bound = guessing._MISSES_OF_MANY.sized(
        {"start": NOW}, [f"nas:{n}" for n in range(9)]
    )
    return {
        "voucher": _explain(
            conn,
            hotspot._LIVE_VOUCHER,
            {"property_id": 1, "code_key": code_key("Code-01234")},
        ),
        "open sessions": _explain(conn, sessions, sessions_bound),
        "two budgets": _explain(
            conn, guessing._MISSES, {"first": "nas:1", "second": "nas:2", "start": NOW}
        ),
        "many budgets": _explain(conn, many, many_bound),
    }


def test_the_reads_of_a_start_search_their_indexes_before_and_after_analyze(
    store: Store,
) -> None:
    dialect = store.dialect
    for analyzed in (False, True):
        if analyzed:
            with store.write() as conn:
                conn.exec_driver_sql("ANALYZE")
        with store.write() as conn:
            plans = _plans(conn)
        where = f"{dialect}, analyzed={analyzed}"
        _searches(plans["voucher"], "credentials", "uq_credentials_live_voucher_key", dialect)
        _searches(plans["open sessions"], "hotspot_sessions", "ix_hotspot_sessions_open", dialect)
        budget_index = (
            "sqlite_autoindex_guess_counts_1" if dialect == "sqlite" else "pk_guess_counts"
        )
        _searches(plans["two budgets"], "guess_counts", budget_index, dialect)
        _searches(plans["many budgets"], "guess_counts", budget_index, dialect)
        assert all(plans.values()), where


def test_the_voucher_read_finds_only_its_propertys_live_voucher(store: Store) -> None:
    """The statement explained above answers as it should on the same data: the live voucher of
    the code in the property asked for (property 2 holds the same codes; withdrawn ones too)."""
    with store.write() as conn:
        one = hotspot.live_vouchers(conn, property_id=1, codes=["code-01234 ", "CODE-99999"])
        two = hotspot.live_vouchers(conn, property_id=2, codes=["Code-01234"])
    assert list(one) == [code_key("Code-01234")]
    assert list(two) == [code_key("Code-01234")]
    assert one[code_key("Code-01234")].id != two[code_key("Code-01234")].id
    assert one[code_key("Code-01234")].id == 2 * 1234 + 1  # property 1's, the live one
