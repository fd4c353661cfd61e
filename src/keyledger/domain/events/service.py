"""Reading the event log."""

from __future__ import annotations

from collections.abc import Sequence

from keyledger.domain.events import repository
from keyledger.domain.events.models import Event, EventQuery
from keyledger.store import Store


def list_events(
    store: Store, *, property_ids: Sequence[int] | None, query: EventQuery
) -> list[Event]:
    """Events of the properties ``property_ids`` (a caller's scope; ``None``: every event, for
    the admin CLI). The event log is the lowest domain layer: it takes property ids, not a
    ``Scope``."""
    with store.read() as conn:
        return repository.select_events(conn, property_ids=property_ids, query=query)
