"""Events as JSON (the API and ``keyledger admin events`` show the same shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from keyledger.domain.events.models import Event
from keyledger.domain.properties.models import Property
from keyledger.kit.clock import format_utc


def render_events(
    events: Sequence[Event], properties: Mapping[int, Property], *, show_credentials: bool = True
) -> dict[str, Any]:
    """The events; without ``show_credentials`` (a token lacking ``credentials:read``) no event
    says which credential it concerns, as a door check's answer does not."""
    return {
        "Events": [
            {
                "Id": event.id,
                "OccurredUtc": format_utc(event.occurred_utc),
                "EnterpriseId": None
                if event.property_id is None
                else str(properties[event.property_id].enterprise_id),
                "Kind": event.kind.value,
                "Actor": {
                    "Kind": event.actor_kind.value,
                    "Id": event.actor_id,
                    "Label": event.actor_label,
                    "AccessTokenId": event.actor_token_id,
                },
                "CredentialId": None
                if event.credential_uid is None or not show_credentials
                else str(event.credential_uid),
                "ResourceId": None if event.resource_uid is None else str(event.resource_uid),
                "Outcome": event.outcome,
                "Details": event.details,
            }
            for event in events
        ],
        "Cursor": events[-1].id if events else None,
    }
