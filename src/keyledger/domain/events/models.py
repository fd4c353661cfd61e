from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from keyledger.domain.callers.models import ActorKind


class EventKind(StrEnum):
    CREDENTIAL_CREATED = "credential.created"
    CREDENTIAL_UPDATED = "credential.updated"
    CREDENTIAL_DELETED = "credential.deleted"
    RESOURCE_SAVED = "resource.saved"
    RESOURCE_DELETED = "resource.deleted"
    ACCESS_CHECKED = "access.checked"
    READER_THROTTLED = "reader.throttled"
    GUESSING_THROTTLED = "guessing.throttled"
    PROPERTY_CREATED = "property.created"
    PROPERTY_CHANGED = "property.changed"
    INTEGRATION_CREATED = "integration.created"
    INTEGRATION_ENABLED = "integration.enabled"
    INTEGRATION_DISABLED = "integration.disabled"
    ACCESS_TOKEN_CREATED = "access_token.created"  # noqa: S105 - an event name
    ACCESS_TOKEN_REVOKED = "access_token.revoked"  # noqa: S105 - an event name
    USER_CREATED = "user.created"
    USER_ENABLED = "user.enabled"
    USER_DISABLED = "user.disabled"
    USER_PASSWORD_CHANGED = "user.password_changed"  # noqa: S105 - an event name
    USER_REFRESH_TOKEN_REUSED = "user.refresh_token_reused"  # noqa: S105 - an event name
    HOTSPOT_SESSION_STARTED = "hotspot.session_started"
    HOTSPOT_USAGE = "hotspot.usage"
    HOTSPOT_SESSION_ENDED = "hotspot.session_ended"
    HOTSPOT_DISCONNECT = "hotspot.disconnect"  # a RADIUS Disconnect-Request answered or not


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    occurred_utc: datetime
    property_id: int | None
    kind: EventKind
    actor_kind: ActorKind
    actor_id: int | None
    actor_label: str
    actor_token_id: int | None
    credential_uid: UUID | None
    resource_uid: UUID | None
    outcome: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventQuery:
    """Newest first; ``before`` is the id of the last event of the previous page."""

    credential_uid: UUID | None = None
    resource_uid: UUID | None = None
    kinds: tuple[EventKind, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    limit: int = 100
    before: int | None = None
