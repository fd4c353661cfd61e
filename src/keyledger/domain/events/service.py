"""Reading the event log."""

from __future__ import annotations

from keyledger.domain.callers.models import Scope
from keyledger.domain.events import repository
from keyledger.domain.events.models import Event, EventQuery
from keyledger.store import Store


def list_events(store: Store, *, scope: Scope | None, query: EventQuery) -> list[Event]:
    """Events of the scope's properties (``None``: every event, for the admin CLI)."""
    with store.read() as conn:
        return repository.select_events(
            conn, property_ids=None if scope is None else scope.property_ids, query=query
        )
