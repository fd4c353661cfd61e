"""``/api/v1``'s answers as JSON: the routers hand the domain's results here (and
``keyledger admin events`` shows events in the same shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from keyledger.domain.access.models import Decision
from keyledger.domain.events.models import Event
from keyledger.domain.hotspot.models import SessionDecision, Usage
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.resources.models import Resource
from keyledger.kit.clock import format_utc


def _text(value: UUID | None) -> str | None:
    return None if value is None else str(value)


def render_resource(resource: Resource, scope: Scope) -> dict[str, Any]:
    return {
        "Id": str(resource.uid),
        "EnterpriseId": str(scope.by_id[resource.property_id].enterprise_id),
        "ParentId": None if resource.parent_uid is None else str(resource.parent_uid),
        "Kind": resource.kind.value,
        "Name": resource.name,
    }


def render_decision(decision: Decision, *, show_credential: bool) -> dict[str, Any]:
    """A door check's answer; which credential matched is shown only with ``show_credential``
    (a token that may read credentials)."""
    return {
        "Granted": decision.granted,
        "Reason": decision.reason.value,
        "CredentialId": None
        if decision.credential_uid is None or not show_credential
        else str(decision.credential_uid),
        "ResourceId": str(decision.reader_uid),
        "At": format_utc(decision.at),
        "ThrottledUntil": None
        if decision.throttled_until is None
        else format_utc(decision.throttled_until),
    }


def render_session(decision: SessionDecision) -> dict[str, Any]:
    return {
        "Granted": decision.granted,
        "Reason": decision.reason.value,
        "SessionId": _text(decision.session_uid),
        "CredentialId": _text(decision.credential_uid),
        "SecondsLeft": decision.seconds_left,
        "MinutesLeft": decision.minutes_left,
    }


def render_usage(usage: Usage) -> dict[str, Any]:
    return {
        "SessionId": str(usage.session_uid),
        "SecondsLeft": usage.seconds_left,
        "MinutesLeft": usage.minutes_left,
        "Ended": usage.ended,
        "EndReason": None if usage.end_reason is None else usage.end_reason.value,
    }


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
