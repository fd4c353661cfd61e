"""Helpers the store's group-writer tests share: a piece of work that writes one event, and the
events written."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, select

from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor, EventKind, NewEvent
from keyledger.kit.clock import utc_now
from keyledger.store import Store
from keyledger.store.schema import events as events_table


def append_event(label: str) -> Callable[[Connection], str]:
    """Work for a writer: one event whose outcome is ``label``; returns ``label``."""

    def work(conn: Connection) -> str:
        events.append(
            conn,
            NewEvent(EventKind.ACCESS_CHECKED, outcome=label),
            actor=Actor.system(),
            now=utc_now(),
        )
        return label

    return work


def event_outcomes(store: Store) -> list[str]:
    """The outcomes of every event written, sorted."""
    with store.read() as conn:
        return sorted(str(row[0]) for row in conn.execute(select(events_table.c.outcome)))
