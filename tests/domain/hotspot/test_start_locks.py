"""How hotspot starts lock (docs/architecture.md, "Lock order"): budgets read without their
locks, a miss takes them (``locks.hold_now``) and reads them again; a start declares its
voucher's lock. Both databases; the races need PostgreSQL's row and advisory locks (SQLite's
one writer serialises every write, and the same groups must give the same answers there)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Connection

from keyledger.domain.credentials import vouchers
from keyledger.domain.credentials.models import VoucherFields
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget, Guesser
from keyledger.domain.hotspot import service as hotspot
from keyledger.domain.hotspot.models import SessionDecision, SessionReason
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.properties.service import add_property
from keyledger.kit.clock import utc_now
from keyledger.store import Store
from keyledger.store.locks import serialise_on
from keyledger.store.writer import GroupWriter
from tests.support import DatabaseFactory, settings_for

ACTOR = Actor.system()
BUDGET = GuessBudget(per_caller=5, per_property=100)


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    store = Store(settings_for(databases.new_url()))
    yield store
    store.dispose()


def _voucher(store: Store, prop: Property, code: str) -> None:
    vouchers.create_voucher(
        store,
        target=prop,
        actor=ACTOR,
        fields=VoucherFields(access_code=code, minutes_included=60, user_limit=10),
    )


def _start(
    writer: GroupWriter, prop: Property, code: str, device: str, caller: str
) -> Any:  # the coroutine of the writer's run
    scope = Scope((prop,))
    return writer.run(
        partial(
            hotspot.start_session,
            scope=scope,
            actor=ACTOR,
            business_id=prop.business_id,
            access_code=code,
            device_id=device,
            idle_seconds=3600,
            caller=caller,
            budget=BUDGET,
        ),
        locks=hotspot.start_locks(scope, business_id=prop.business_id, access_code=code),
        wanted=hotspot.miss_locks(scope, caller=caller, business_id=prop.business_id),
    )


def test_a_miss_reads_its_budget_again_under_its_locks(store: Store) -> None:
    """A group reads the guesser's budget (unlocked), then another writer uses the budget up
    and commits; a miss later in the same group must see that (Throttled, nothing counted past
    the budget), not the transaction's earlier reading. A grant read before it stands."""
    prop = add_property(store, name="Lounge")
    _voucher(store, prop, "OK1")
    _voucher(store, prop, "OK2")
    writer = GroupWriter(store)
    done: list[str] = []

    def others_use_the_budget_up(conn: Connection) -> None:
        if done:
            return
        done.append("once")  # another worker's transaction, committed before the miss is read
        guesser = Guesser("guesser", prop.id)

        def other() -> None:
            with store.write() as other_conn:
                serialise_on(other_conn, guessing.lock_keys(guesser))
                for _ in range(BUDGET.per_caller):
                    guessing.count_miss(
                        other_conn, guesser=guesser, budget=BUDGET, actor=ACTOR, now=utc_now()
                    )

        if store.dialect == "sqlite":  # one writer: the group holds it; counted in-line instead
            for _ in range(BUDGET.per_caller):
                guessing.count_miss(
                    conn, guesser=guesser, budget=BUDGET, actor=ACTOR, now=utc_now()
                )
            return
        thread = threading.Thread(target=other)
        thread.start()
        thread.join(10)
        assert not thread.is_alive()

    async def main() -> list[Any]:
        return list(
            await asyncio.gather(
                _start(writer, prop, "OK1", "d1", "guesser"),  # reads the budget: 0 misses
                writer.run(others_use_the_budget_up),
                _start(writer, prop, "WRONG", "d2", "guesser"),
            )
        )

    first, _, miss = asyncio.run(main())
    assert first.reason is SessionReason.GRANTED
    assert miss.reason is SessionReason.THROTTLED
    with store.read() as conn:
        counted = guessing.throttled_until(
            conn, guesser=Guesser("guesser", prop.id), budget=BUDGET, now=utc_now()
        )
    assert counted is not None  # used up by exactly the other writer's misses
    assert writer.groups == 1


def test_two_workers_starting_the_same_vouchers_in_opposite_orders_take_turns(
    store: Store,
) -> None:
    """Worker A's group starts V1 then V2, worker B's V2 then V1, at the same moment: without
    the vouchers' declared locks each group holds one voucher row and waits for the other's
    (a deadlock PostgreSQL breaks after a second, the victim's group run again piece by
    piece). With them the second group waits, then both commit once, all four granted."""
    prop = add_property(store, name="Conference")
    _voucher(store, prop, "V1")
    _voucher(store, prop, "V2")
    barrier = threading.Barrier(2)
    outcomes: dict[str, tuple[list[SessionReason], int, int]] = {}

    def worker(name: str, first: str, second: str) -> None:
        writer = GroupWriter(store)
        passed: list[str] = []

        def meet(conn: Connection) -> None:  # both groups hold their first voucher row here
            if not passed and store.dialect == "postgresql":
                passed.append("once")
                # The other group waits for this one's declared locks (as it should): broken.
                with contextlib.suppress(threading.BrokenBarrierError):
                    barrier.wait(3)

        async def main() -> list[Any]:
            return list(
                await asyncio.gather(
                    _start(writer, prop, first, f"{name}-1", name),
                    writer.run(meet),
                    _start(writer, prop, second, f"{name}-2", name),
                )
            )

        results = asyncio.run(main())
        decisions: list[SessionDecision] = [results[0], results[2]]
        outcomes[name] = ([d.reason for d in decisions], writer.groups, writer.reruns)

    threads = [
        threading.Thread(target=worker, args=("A", "V1", "V2")),
        threading.Thread(target=worker, args=("B", "V2", "V1")),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    granted = [SessionReason.GRANTED, SessionReason.GRANTED]
    assert outcomes == {"A": (granted, 1, 0), "B": (granted, 1, 0)}
