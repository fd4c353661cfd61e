from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from keyledger.kit.clock import format_utc


class ActorKind(StrEnum):
    INTEGRATION = "integration"
    USER = "user"
    SYSTEM = "system"
    NAS = "nas"  # a hotspot asking over RADIUS (issue 14)


@dataclass(frozen=True, slots=True)
class Actor:
    """Who made a change: recorded as ``created_by`` / ``updated_by``; for an integration also
    the access token it used (``token_id``), whose scopes are fixed when it is made."""

    kind: ActorKind
    id: int | None
    label: str
    token_id: int | None = None

    @classmethod
    def system(cls) -> Actor:
        return cls(kind=ActorKind.SYSTEM, id=None, label="System")


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


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append (``repository.append_many`` adds who and when). Made only by the
    builders below, one per event kind: they hold the ``details`` each kind stores, with its
    wire keys (PascalCase, as the event API renders them), so a kind's shape is written once."""

    kind: EventKind
    property_id: int | None = None
    credential_uid: UUID | None = None
    resource_uid: UUID | None = None
    outcome: str | None = None
    details: dict[str, Any] | None = None


def changed_fields(before: object, after: object, tracked: Sequence[tuple[str, str]]) -> list[str]:
    """The API names (never the values) of the ``tracked`` ``(attribute, API name)`` pairs that
    differ between ``before`` and ``after`` (credentials: ``credentials.models.TRACKED_FIELDS``)."""
    return [name for field, name in tracked if getattr(before, field) != getattr(after, field)]


# Credentials.


def credential_created(
    *, property_id: int, credential_uid: UUID, kind: str, token_type: str | None
) -> NewEvent:
    details: dict[str, Any] = {"Kind": kind}
    if token_type is not None:
        details["Type"] = token_type
    return NewEvent(
        EventKind.CREDENTIAL_CREATED,
        property_id=property_id,
        credential_uid=credential_uid,
        details=details,
    )


def credential_updated(
    *, property_id: int, credential_uid: UUID, changed: list[str], via: str | None = None
) -> NewEvent:
    """``via``: the operation that made the change when a dialect has several (Nexudus)."""
    details: dict[str, Any] = (
        {"Changed": changed} if via is None else {"Via": via, "Changed": changed}
    )
    return NewEvent(
        EventKind.CREDENTIAL_UPDATED,
        property_id=property_id,
        credential_uid=credential_uid,
        details=details,
    )


def credential_deleted(
    *,
    property_id: int,
    credential_uid: UUID,
    changed: list[str] | None = None,
    via: str | None = None,
) -> NewEvent:
    """No details (Mews), or the operation and what it changed (a Nexudus voucher deleted by
    a rewrite)."""
    details = None if via is None and changed is None else {"Via": via, "Changed": changed}
    return NewEvent(
        EventKind.CREDENTIAL_DELETED,
        property_id=property_id,
        credential_uid=credential_uid,
        details=details,
    )


# Resources.


def resource_saved(
    *, property_id: int, resource_uid: UUID, kind: str, parent_uid: UUID | None
) -> NewEvent:
    return NewEvent(
        EventKind.RESOURCE_SAVED,
        property_id=property_id,
        resource_uid=resource_uid,
        details={"Kind": kind, "ParentId": None if parent_uid is None else str(parent_uid)},
    )


def resource_deleted(*, property_id: int, resource_uid: UUID) -> NewEvent:
    return NewEvent(EventKind.RESOURCE_DELETED, property_id=property_id, resource_uid=resource_uid)


# Door checks and guessing.


def access_checked(
    *,
    property_id: int,
    credential_uid: UUID | None,
    reader_uid: UUID,
    outcome: str,
    token_type: str,
    at: datetime,
) -> NewEvent:
    return NewEvent(
        EventKind.ACCESS_CHECKED,
        property_id=property_id,
        credential_uid=credential_uid,
        resource_uid=reader_uid,
        outcome=outcome,
        details={"Type": token_type, "At": format_utc(at)},
    )


def reader_throttled(
    *, property_id: int, reader_uid: UUID, refused_checks: int, until: datetime
) -> NewEvent:
    return NewEvent(
        EventKind.READER_THROTTLED,
        property_id=property_id,
        resource_uid=reader_uid,
        outcome=THROTTLED,
        details={"RefusedChecks": refused_checks, "Until": format_utc(until)},
    )


def guessing_throttled(*, property_id: int, budget: str, misses: int, until: datetime) -> NewEvent:
    """``budget``: which budget was used up (``Caller`` or ``Property``)."""
    return NewEvent(
        EventKind.GUESSING_THROTTLED,
        property_id=property_id,
        outcome=THROTTLED,
        details={"Budget": budget, "Misses": misses, "Until": format_utc(until)},
    )


#: The outcome of the throttling events (the door check's ``Reason.THROTTLED`` too).
THROTTLED = "Throttled"


# Properties.


def property_created(*, property_id: int, name: str, business_id: int) -> NewEvent:
    return NewEvent(
        EventKind.PROPERTY_CREATED,
        property_id=property_id,
        details={"Name": name, "BusinessId": business_id},
    )


def property_changed(*, property_id: int, collision_check: bool) -> NewEvent:
    return NewEvent(
        EventKind.PROPERTY_CHANGED,
        property_id=property_id,
        details={"CollisionCheck": collision_check},
    )


# Integrations and their access tokens (no property: an integration spans them).


def integration_created(*, integration_id: int, name: str) -> NewEvent:
    return NewEvent(
        EventKind.INTEGRATION_CREATED, details={"IntegrationId": integration_id, "Name": name}
    )


def integration_enabled(*, integration_id: int) -> NewEvent:
    return NewEvent(EventKind.INTEGRATION_ENABLED, details={"IntegrationId": integration_id})


def integration_disabled(*, integration_id: int) -> NewEvent:
    return NewEvent(EventKind.INTEGRATION_DISABLED, details={"IntegrationId": integration_id})


def access_token_created(
    *, property_id: int, access_token_id: int, integration_id: int, scopes: list[str]
) -> NewEvent:
    return NewEvent(
        EventKind.ACCESS_TOKEN_CREATED,
        property_id=property_id,
        details={
            "AccessTokenId": access_token_id,
            "IntegrationId": integration_id,
            "Scopes": scopes,
        },
    )


def access_token_revoked(*, property_id: int, access_token_id: int) -> NewEvent:
    return NewEvent(
        EventKind.ACCESS_TOKEN_REVOKED,
        property_id=property_id,
        details={"AccessTokenId": access_token_id},
    )


# Users (one event per property the user belongs to).


def user_created(*, property_id: int, user_id: int, email: str, roles: list[str]) -> NewEvent:
    return NewEvent(
        EventKind.USER_CREATED,
        property_id=property_id,
        details={"UserId": user_id, "Email": email, "Roles": roles},
    )


def _user_changed(
    kind: EventKind, property_id: int, user_id: int, email: str, bearer_tokens_revoked: int
) -> NewEvent:
    return NewEvent(
        kind,
        property_id=property_id,
        details={"UserId": user_id, "Email": email, "BearerTokensRevoked": bearer_tokens_revoked},
    )


def user_enabled(
    *, property_id: int, user_id: int, email: str, bearer_tokens_revoked: int
) -> NewEvent:
    return _user_changed(EventKind.USER_ENABLED, property_id, user_id, email, bearer_tokens_revoked)


def user_disabled(
    *, property_id: int, user_id: int, email: str, bearer_tokens_revoked: int
) -> NewEvent:
    return _user_changed(
        EventKind.USER_DISABLED, property_id, user_id, email, bearer_tokens_revoked
    )


def user_password_changed(
    *, property_id: int, user_id: int, email: str, bearer_tokens_revoked: int
) -> NewEvent:
    return _user_changed(
        EventKind.USER_PASSWORD_CHANGED, property_id, user_id, email, bearer_tokens_revoked
    )


def user_refresh_token_reused(
    *, property_id: int, user_id: int, bearer_tokens_revoked: int
) -> NewEvent:
    return NewEvent(
        EventKind.USER_REFRESH_TOKEN_REUSED,
        property_id=property_id,
        details={"UserId": user_id, "BearerTokensRevoked": bearer_tokens_revoked},
    )


# Hotspot sessions.


def hotspot_session_started(
    *,
    property_id: int,
    credential_uid: UUID | None,
    outcome: str,
    device_id: str,
    session_uid: UUID | None,
) -> NewEvent:
    return NewEvent(
        EventKind.HOTSPOT_SESSION_STARTED,
        property_id=property_id,
        credential_uid=credential_uid,
        outcome=outcome,
        details={
            "DeviceId": device_id,
            "SessionId": None if session_uid is None else str(session_uid),
        },
    )


def hotspot_usage(
    *,
    property_id: int,
    credential_uid: UUID,
    session_uid: UUID,
    seconds: int,
    taken: int,
    minutes_left: int,
    end_reason: str | None,
) -> NewEvent:
    """A usage report: the seconds the client reported and those taken off the voucher (fewer
    when less was left); the report that ends its session (``end_reason``) is a
    ``hotspot.session_ended`` of the same shape."""
    return NewEvent(
        EventKind.HOTSPOT_USAGE if end_reason is None else EventKind.HOTSPOT_SESSION_ENDED,
        property_id=property_id,
        credential_uid=credential_uid,
        outcome=end_reason,
        details={
            "SessionId": str(session_uid),
            "Seconds": seconds,
            "SecondsTaken": taken,
            "MinutesLeft": minutes_left,
        },
    )


def hotspot_session_ended(
    *, property_id: int, credential_uid: UUID, session_uid: UUID, reason: str
) -> NewEvent:
    """A session ended because its voucher was withdrawn (the signal a RADIUS disconnect would
    act on); a session its device ends reports usage (``hotspot_usage``)."""
    return NewEvent(
        EventKind.HOTSPOT_SESSION_ENDED,
        property_id=property_id,
        credential_uid=credential_uid,
        outcome=reason,
        details={"SessionId": str(session_uid), "Reason": reason},
    )


def hotspot_disconnect(
    *,
    property_id: int,
    credential_uid: UUID,
    outcome: str,
    session_uid: UUID,
    acct_session_id: str,
    device_id: str,
    nas_id: int,
    reason: str,
    attempts: int,
    error_cause: int | None,
) -> NewEvent:
    """How a NAS answered a RADIUS Disconnect-Request for a withdrawn session (``outcome``: Ack,
    Nak, NoAnswer), once per open accounting session (docs/radius.md, "Disconnect")."""
    return NewEvent(
        EventKind.HOTSPOT_DISCONNECT,
        property_id=property_id,
        credential_uid=credential_uid,
        outcome=outcome,
        details={
            "SessionId": str(session_uid),
            "AcctSessionId": acct_session_id,
            "DeviceId": device_id,
            "NasId": nas_id,
            "Reason": reason,
            "Attempts": attempts,
            "ErrorCause": error_cause,
        },
    )
