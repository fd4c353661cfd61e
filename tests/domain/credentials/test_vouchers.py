"""Minute arithmetic of vouchers (domain/credentials/vouchers.py, and the usage a hotspot session
takes off, domain/hotspot) on a real SQLite store: what a top-up or a budget change does to the
minutes left, the bounds, and how reported seconds round."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from keyledger.domain.credentials import vouchers
from keyledger.domain.credentials.models import Credential, VoucherFields
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.hotspot import service as hotspot
from keyledger.domain.hotspot.models import EndReason, SessionReason, Usage
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.properties.service import add_property
from keyledger.kit.errors import InvalidInput, RuleViolation
from keyledger.store import Store
from keyledger.store.schema import MINUTES_MAX

ACTOR = Actor.system()


@dataclass
class Space:
    store: Store
    prop: Property

    @property
    def scope(self) -> Scope:
        return Scope((self.prop,))

    def voucher(self, minutes: int, code: str = "CODE1") -> Credential:
        return vouchers.create_voucher(
            self.store,
            target=self.prop,
            actor=ACTOR,
            fields=VoucherFields(access_code=code, minutes_included=minutes),
        )

    def read(self, voucher: Credential) -> tuple[int | None, int | None]:
        found = vouchers.find_voucher(self.store, scope=self.scope, voucher_id=voucher.id)
        return found.minutes_included, found.minutes_left

    def add(self, voucher: Credential, minutes: int) -> None:
        vouchers.add_minutes(
            self.store,
            scope=self.scope,
            actor=ACTOR,
            voucher_ids=[voucher.id],
            minutes=minutes,
            on_withdrawal=hotspot.end_withdrawn_sessions,
        )

    def set_budget(self, voucher: Credential, minutes: int) -> None:
        vouchers.replace_voucher(
            self.store,
            scope=self.scope,
            actor=ACTOR,
            voucher_id=voucher.id,
            fields=VoucherFields(access_code=voucher.value, minutes_included=minutes),
            on_withdrawal=hotspot.end_withdrawn_sessions,
        )


@pytest.fixture
def space(sqlite_store: Store) -> Space:
    return Space(sqlite_store, add_property(sqlite_store, name="Minutes"))


def test_a_new_voucher_has_its_whole_budget_left(space: Space) -> None:
    assert space.read(space.voucher(90)) == (90, 90)
    assert space.read(space.voucher(0, "ZERO")) == (0, 0)


def test_a_top_up_adds_to_the_budget_and_to_what_is_left(space: Space) -> None:
    voucher = space.voucher(60)
    space.add(voucher, 30)
    assert space.read(voucher) == (90, 90)
    space.set_budget(voucher, 40)  # down by 50: what is left follows
    assert space.read(voucher) == (40, 40)
    space.set_budget(voucher, 100)  # up by 60
    assert space.read(voucher) == (100, 100)


def test_a_budget_cut_below_what_was_used_leaves_zero(space: Space) -> None:
    voucher = space.voucher(10)
    use(space, voucher, 8 * 60)
    assert space.read(voucher) == (10, 2)
    space.set_budget(voucher, 5)  # 2 - 5: never below 0
    assert space.read(voucher) == (5, 0)
    space.add(voucher, 3)
    assert space.read(voucher) == (8, 3)
    vouchers.reset_minutes(
        space.store,
        scope=space.scope,
        actor=ACTOR,
        voucher_ids=[voucher.id],
        on_withdrawal=hotspot.end_withdrawn_sessions,
    )
    assert space.read(voucher) == (8, 8)


@pytest.mark.parametrize("minutes", [0, -1, 10_000_001])
def test_a_top_up_is_between_1_and_10_million(space: Space, minutes: int) -> None:
    voucher = space.voucher(60)
    with pytest.raises(InvalidInput):
        space.add(voucher, minutes)
    assert space.read(voucher) == (60, 60)


def test_no_budget_passes_the_column_bound(space: Space) -> None:
    with pytest.raises(InvalidInput):
        space.voucher(MINUTES_MAX + 1)
    voucher = space.voucher(MINUTES_MAX - 5)
    with pytest.raises(RuleViolation):
        space.add(voucher, 6)  # refused, nothing changed
    assert space.read(voucher) == (MINUTES_MAX - 5, MINUTES_MAX - 5)
    space.add(voucher, 5)
    assert space.read(voucher) == (MINUTES_MAX, MINUTES_MAX)


def use(space: Space, voucher: Credential, *seconds: int) -> list[Usage]:
    """Start a session on the voucher and report ``seconds`` one report at a time."""
    with space.store.write() as conn:
        started = hotspot.start_session(
            conn,
            scope=space.scope,
            actor=ACTOR,
            business_id=space.prop.business_id,
            access_code=voucher.value,
            device_id="device-1",
            idle_seconds=3600,
            caller="test",
            budget=GuessBudget(),
        )
    assert started.reason is SessionReason.GRANTED
    assert started.session_uid is not None
    reports = []
    for elapsed in seconds:
        with space.store.write() as conn:
            reports.append(
                hotspot.report_usage(
                    conn,
                    scope=space.scope,
                    actor=ACTOR,
                    session_uid=started.session_uid,
                    elapsed_seconds=elapsed,
                    end=False,
                    idle_seconds=3600,
                )
            )
    return reports


def test_usage_takes_whole_minutes_and_carries_the_seconds(space: Space) -> None:
    voucher = space.voucher(3)
    first, second, third = use(space, voucher, 90, 29, 31)
    # 90 s: one whole minute off, 30 s carried; seconds left 2 * 60 - 30.
    assert (first.minutes_left, first.seconds_left, first.ended) == (2, 90, False)
    # 29 s more: 59 s carried, still no whole minute.
    assert (second.minutes_left, second.seconds_left) == (2, 61)
    # 31 s more: 90 s carried makes a minute; 30 s carried.
    assert (third.minutes_left, third.seconds_left) == (1, 30)
    assert space.read(voucher) == (3, 1)  # the budget stays; what is left is whole minutes


def test_the_last_seconds_end_the_session(space: Space) -> None:
    voucher = space.voucher(1)
    (last,) = use(space, voucher, 75)  # more than is left: 0, never below
    assert (last.minutes_left, last.seconds_left, last.ended) == (0, 0, True)
    assert last.end_reason is EndReason.NO_MINUTES_LEFT
    assert space.read(voucher) == (1, 0)
