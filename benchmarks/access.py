"""Door checks and hotspot usage reports through the credential core, on a property with N
reservation tokens and vouchers (the store's side of /api/v1/access/check and …/usage).

A door check sample is ``access.check_door``, the very call /api/v1/access/check makes: the
decision from one read, then its record through the group writer (``store/writer.py``), here a
group of one, as a lone request's; a usage report sample is one call in its own write
transaction. The table shows p50, p95 and the rate one process reaches. The HTTP-level workloads
(32 connections, against the hello-world ceiling) belong to the full harness of the benchmark issue.
"""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import text

from keyledger.domain.access.models import ReaderPolicy
from keyledger.domain.access.service import check_door
from keyledger.domain.credentials import voucher_repository
from keyledger.domain.credentials.collisions import reach_check
from keyledger.domain.credentials.repository import insert_credentials_quietly
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.hotspot.service import report_usage, start_session
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.properties.service import add_property
from keyledger.domain.resources.models import ResourceDraft, ResourceKind
from keyledger.domain.resources.service import save_resources
from keyledger.kit.sealing import ValueSealer
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade
from keyledger.store.writer import GroupWriter

BATCH = 5_000
_NULLABLE = (
    "value_sealed",
    "value_fp",
    "token_type",
    "service_order_id",
    "resource_id",
    "valid_from",
    "valid_to",
    "minutes_included",
    "minutes_left",
    "user_limit",
    "code_key",
    "description_key",
)


def is_voucher(n: int, voucher_every: int) -> bool:
    """Credential ``n`` of a seed is a voucher (else a door PIN)."""
    return n % voucher_every == 0


def _rows(
    property_id: int,
    first: int,
    count: int,
    *,
    rooms: list[uuid.UUID],
    now: datetime,
    voucher_every: int,
    sealer: ValueSealer,
) -> list[dict[str, Any]]:
    """Credentials ``first .. first+count``: every ``voucher_every``-th a voucher ``Vn`` with a
    large budget (MinutesIncluded 100,000 + n % 8), the others door PINs ``n#`` on a room."""
    rows: list[dict[str, Any]] = []
    for n in range(first, first + count):
        base: dict[str, Any] = {
            **dict.fromkeys(_NULLABLE),
            "uid": uuid.uuid4(),
            "property_id": property_id,
            "perm_bed": False,
            "perm_floor": False,
            "perm_building": False,
            "created_utc": now,
            "updated_utc": now,
            "created_by": "bench",
            "updated_by": "bench",
        }
        if not is_voucher(n, voucher_every):
            rows.append(
                {
                    **base,
                    "kind": "reservation",
                    **sealer.columns(base["uid"], f"{n:09d}#"),
                    "token_type": "PinCode",
                    "service_order_id": uuid.uuid4(),
                    "resource_id": rooms[n % len(rooms)],
                    "valid_from": now - timedelta(days=1),
                    "valid_to": now + timedelta(days=1),
                    "perm_room": True,
                }
            )
        else:
            rows.append(
                {
                    **base,
                    "kind": "voucher",
                    "value": f"V{n:09d}",
                    **voucher_repository.key_columns(f"V{n:09d}", None),
                    "perm_room": False,
                    "minutes_included": 100_000 + n % 8,
                    "minutes_left": 100_000 + n % 8,
                    "user_limit": 1000,
                }
            )
    return rows


@dataclass(frozen=True)
class Seeded:
    property: Property
    rooms: list[uuid.UUID]
    now: datetime


def seed(store: Store, credentials: int, *, voucher_every: int = 2) -> Seeded:
    """A property with a building, a floor and 200 rooms, and ``credentials`` credentials
    (see ``_rows``)."""
    prop = add_property(store, name=f"Bench {uuid.uuid4().hex[:6]}")
    building, floor = uuid.uuid4(), uuid.uuid4()
    rooms = [uuid.uuid4() for _ in range(200)]
    drafts = [
        ResourceDraft(building, None, ResourceKind.BUILDING, "B"),
        ResourceDraft(floor, building, ResourceKind.FLOOR, "F"),
        *[ResourceDraft(room, floor, ResourceKind.ROOM, f"R{n}") for n, room in enumerate(rooms)],
    ]
    save_resources(
        store,
        actor=Actor.system(),
        batches={prop: drafts},
        on_reach_change=reach_check(store.sealer),
    )
    now = datetime.now(UTC).replace(microsecond=0)
    for start in range(0, credentials, BATCH):
        with store.write() as conn:
            insert_credentials_quietly(
                conn,
                _rows(
                    prop.id,
                    start,
                    min(BATCH, credentials - start),
                    rooms=rooms,
                    now=now,
                    voucher_every=voucher_every,
                    sealer=store.sealer,
                ),
            )
    return Seeded(property=prop, rooms=rooms, now=now)


def settle(store: Store) -> None:
    """Steady state after a bulk load: statistics, and on PostgreSQL the visibility map that
    makes index-only scans possible (autovacuum builds it in production; a fresh load has none)."""
    if store.dialect == "postgresql":
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE credentials"))
    else:
        with store.write() as conn:
            conn.execute(text("ANALYZE"))


def _timed(action: Callable[[int], object], repeat: int) -> tuple[float, float, float]:
    samples = []
    started_all = time.perf_counter()
    for index in range(repeat):
        started = time.perf_counter()
        action(index)
        samples.append((time.perf_counter() - started) * 1000)
    elapsed = time.perf_counter() - started_all
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1], repeat / elapsed


def run(*, credentials: int, database_url: str | None, repeat: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="keyledger-bench-"))
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    store = Store(Settings(database_url=url))
    upgrade(store.engine)
    started = time.perf_counter()
    seeded = seed(store, credentials)
    prop, rooms, now = seeded.property, seeded.rooms, seeded.now
    settle(store)
    load_seconds = time.perf_counter() - started
    scope, actor = Scope((prop,)), Actor.system()
    rng = random.Random(3)
    policy = ReaderPolicy(failures=10**9)
    pins = [n for n in range(credentials) if not is_voucher(n, 2)]
    vouchers = [n for n in range(credentials) if is_voucher(n, 2)]

    loop = asyncio.new_event_loop()
    writer = GroupWriter(store)

    def door(_: int) -> object:
        n = rng.choice(pins)
        return loop.run_until_complete(
            check_door(
                store,
                writer,
                scope=scope,
                actor=actor,
                caller="benchmark",
                reader_uid=rooms[n % len(rooms)],
                token_type="PinCode",  # noqa: S106 - a token Type, not a password
                value=f"{n:09d}#",
                at=now,
                policy=policy,
                budget=GuessBudget(),
            )
        )

    sessions = []
    for n in range(50):
        with store.write() as conn:
            decision = start_session(
                conn,
                scope=scope,
                actor=actor,
                business_id=prop.business_id,
                access_code=f"V{rng.choice(vouchers):09d}",
                device_id=f"d{n}",
                idle_seconds=3600,
                caller="benchmark",
                budget=GuessBudget(),
            )
        sessions.append(decision.session_uid)

    def usage(index: int) -> object:
        session = sessions[index % len(sessions)]
        assert session is not None
        with store.write() as conn:
            return report_usage(
                conn,
                scope=scope,
                actor=actor,
                session_uid=session,
                elapsed_seconds=7,
                end=False,
                idle_seconds=3600,
            )

    rows_out = []
    for name, action in (
        ("door check (granted, room reader, tree of 202)", door),
        ("hotspot usage report (7 s)", usage),
    ):
        p50, p95, rate = _timed(action, repeat)
        rows_out.append((name, p50, p95, rate))
    loop.close()
    store.dispose()
    title = (
        f"{store.dialect}, {credentials:,} credentials in one property "
        f"(loaded in {load_seconds:.0f} s)"
    )
    print(title)
    print(f"{'workload':52} {'p50 ms':>8} {'p95 ms':>8} {'per s':>8}")
    for name, p50, p95, rate in rows_out:
        print(f"{name:52} {p50:8.2f} {p95:8.2f} {rate:8.0f}")
    results = Path("benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / f"access-{store.dialect}-{credentials}.json").write_text(
        json.dumps(
            {
                "title": title,
                "rows": [
                    {"workload": n, "p50_ms": a, "p95_ms": b, "per_second": r}
                    for n, a, b, r in rows_out
                ],
            },
            indent=2,
        )
    )
