"""Nexudus list queries in one business holding N vouchers, through the credential core.

Measures the store's side of ``GET /api/spaces/accesstokens``: the page query and its count.
Each workload runs ``repeat`` times with different values; the table shows p50 and p95. The last
row searches a term containing ``_``: SQLite then matches by LIKE over the business's rows (its
FTS5 index cannot take escaped wildcards), which shows what the trigram index buys; PostgreSQL's
trigram index serves that case too.
"""

from __future__ import annotations

import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.access import settle
from keyledger.domain.credentials import voucher_repository
from keyledger.domain.credentials import vouchers as voucher_service
from keyledger.domain.credentials.models import VoucherCondition, VoucherField, VoucherQuery
from keyledger.domain.credentials.repository import insert_credentials
from keyledger.domain.credentials.vouchers import CODE_ALPHABET
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade

BATCH = 5_000


def _codes(count: int, rng: random.Random) -> list[str]:
    return ["".join(rng.choice(CODE_ALPHABET) for _ in range(10)) for _ in range(count)]


def _fill(store: Store, property_id: int, count: int, rng: random.Random) -> list[str]:
    now = datetime.now(UTC).replace(microsecond=0)
    codes = _codes(count, rng)
    for start in range(0, count, BATCH):
        rows: list[dict[str, Any]] = [
            {
                "uid": uuid.uuid4(),
                "property_id": property_id,
                "kind": "voucher",
                "value": code,
                "description": f"desk {start + n}",
                **voucher_repository.key_columns(code, f"desk {start + n}"),
                "minutes_included": 30 * (1 + (start + n) % 8),
                "minutes_left": 30,
                "perm_bed": False,
                "perm_room": False,
                "perm_floor": False,
                "perm_building": False,
                "created_utc": now,
                "updated_utc": now,
                "created_by": "bench",
                "updated_by": "bench",
            }
            for n, code in enumerate(codes[start : start + BATCH])
        ]
        with store.write() as conn:
            insert_credentials(conn, rows)
    settle(store)
    return codes


def _timed(action: Callable[[int], object], repeat: int) -> tuple[float, float]:
    samples = []
    for index in range(repeat):
        started = time.perf_counter()
        action(index)
        samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def run(*, vouchers: int, database_url: str | None, repeat: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="keyledger-bench-"))
    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    store = Store(Settings(database_url=url))
    upgrade(store.engine)
    rng = random.Random(7)
    business = add_property(store, name=f"Bench {uuid.uuid4().hex[:6]}")
    started = time.perf_counter()
    codes = _fill(store, business.id, vouchers, rng)
    load_seconds = time.perf_counter() - started
    scope = Scope((business,))
    picks = [rng.choice(codes) for _ in range(repeat)]

    def page(*conditions: VoucherCondition, **extra: Any) -> Callable[[int], object]:
        def action(_: int) -> object:
            return vouchers_list(VoucherQuery(conditions=conditions, **extra))

        return action

    def vouchers_list(query: VoucherQuery) -> object:
        return voucher_service.list_vouchers(store, scope=scope, query=query)

    rows: list[tuple[str, float, float]] = []

    def measure(name: str, action: Callable[[int], object]) -> None:
        p50, p95 = _timed(action, repeat)
        rows.append((name, p50, p95))

    measure("first page, no filter (25)", page())
    measure(
        "exact filter: AccessToken_Id=[…] (25)",
        lambda i: vouchers_list(
            VoucherQuery(
                conditions=(VoucherCondition(VoucherField.ID, one_of=tuple(range(i + 1, i + 26))),)
            )
        ),
    )
    measure(
        "exact filter: AccessToken_MinutesIncluded (1/8 of rows)",
        page(VoucherCondition(VoucherField.MINUTES_INCLUDED, one_of=(60,))),
    )
    measure(
        "substring: AccessToken_AccessCode, 4 chars (trigram index)",
        lambda i: vouchers_list(
            VoucherQuery(
                conditions=(VoucherCondition(VoucherField.ACCESS_CODE, contains=picks[i][3:7]),)
            )
        ),
    )
    measure(
        "substring: AccessToken_AccessCode, full code (trigram index)",
        lambda i: vouchers_list(
            VoucherQuery(
                conditions=(VoucherCondition(VoucherField.ACCESS_CODE, contains=picks[i]),)
            )
        ),
    )
    measure(
        "substring with _ in the term (SQLite: LIKE scan)",
        lambda i: vouchers_list(
            VoucherQuery(
                conditions=(
                    VoucherCondition(VoucherField.ACCESS_CODE, contains=picks[i][3:6] + "_"),
                )
            )
        ),
    )
    store.dispose()
    title = (
        f"{store.dialect}, {vouchers:,} vouchers in one business (loaded in {load_seconds:.0f} s)"
    )
    print(title)
    print(f"{'workload':62} {'p50 ms':>8} {'p95 ms':>8}")
    for name, p50, p95 in rows:
        print(f"{name:62} {p50:8.2f} {p95:8.2f}")
    results = Path("benchmarks/results")
    results.mkdir(parents=True, exist_ok=True)
    (results / f"search-{store.dialect}-{vouchers}.json").write_text(
        json.dumps(
            {
                "title": title,
                "rows": [{"workload": n, "p50_ms": a, "p95_ms": b} for n, a, b in rows],
            },
            indent=2,
        )
    )
