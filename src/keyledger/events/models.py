from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from keyledger.callers.models import ActorKind


class EventKind(StrEnum):
    CREDENTIAL_CREATED = "credential.created"
    CREDENTIAL_UPDATED = "credential.updated"
    CREDENTIAL_DELETED = "credential.deleted"
    RESOURCE_SAVED = "resource.saved"
    RESOURCE_DELETED = "resource.deleted"
    ACCESS_CHECKED = "access.checked"
    READER_THROTTLED = "reader.throttled"


@dataclass(frozen=True, slots=True)
class Event:
    id: int
    occurred_utc: datetime
    property_id: int | None
    kind: EventKind
    actor_kind: ActorKind
    actor_id: int | None
    actor_label: str
    credential_uid: UUID | None
    resource_uid: UUID | None
    outcome: str | None
    details: dict[str, Any] = field(default_factory=dict)
