"""The event builders of events/models.py store exactly the details the services assembled inline
before them (same keys, same order, same values), so the stored JSON is unchanged."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

from keyledger.domain.events import models as records
from keyledger.domain.events.models import EventKind, NewEvent

AT = datetime(2026, 3, 1, 12, 30, 5, tzinfo=UTC)
AT_TEXT = "2026-03-01T12:30:05Z"
UID, OTHER = uuid.uuid4(), uuid.uuid4()


def _stored(event: NewEvent) -> tuple[str, str | None, str]:
    return str(event.kind), event.outcome, json.dumps(event.details)


def test_each_builder_stores_the_details_written_inline_before() -> None:
    expected: list[tuple[NewEvent, EventKind, str | None, object]] = [
        (
            records.credential_created(
                property_id=1, credential_uid=UID, kind="reservation", token_type="PinCode"
            ),
            EventKind.CREDENTIAL_CREATED,
            None,
            {"Kind": "reservation", "Type": "PinCode"},
        ),
        (
            records.credential_created(
                property_id=1, credential_uid=UID, kind="voucher", token_type=None
            ),
            EventKind.CREDENTIAL_CREATED,
            None,
            {"Kind": "voucher"},
        ),
        (
            records.credential_updated(property_id=1, credential_uid=UID, changed=["Value"]),
            EventKind.CREDENTIAL_UPDATED,
            None,
            {"Changed": ["Value"]},
        ),
        (
            records.credential_updated(
                property_id=1, credential_uid=UID, changed=["MinutesLeft"], via="ADD_MINUTES"
            ),
            EventKind.CREDENTIAL_UPDATED,
            None,
            {"Via": "ADD_MINUTES", "Changed": ["MinutesLeft"]},
        ),
        (
            records.credential_deleted(property_id=1, credential_uid=UID),
            EventKind.CREDENTIAL_DELETED,
            None,
            None,
        ),
        (
            records.credential_deleted(property_id=1, credential_uid=UID, changed=[], via="delete"),
            EventKind.CREDENTIAL_DELETED,
            None,
            {"Via": "delete", "Changed": []},
        ),
        (
            records.resource_saved(property_id=1, resource_uid=UID, kind="Room", parent_uid=OTHER),
            EventKind.RESOURCE_SAVED,
            None,
            {"Kind": "Room", "ParentId": str(OTHER)},
        ),
        (
            records.resource_saved(
                property_id=1, resource_uid=UID, kind="Building", parent_uid=None
            ),
            EventKind.RESOURCE_SAVED,
            None,
            {"Kind": "Building", "ParentId": None},
        ),
        (
            records.resource_deleted(property_id=1, resource_uid=UID),
            EventKind.RESOURCE_DELETED,
            None,
            None,
        ),
        (
            records.access_checked(
                property_id=1,
                credential_uid=None,
                reader_uid=UID,
                outcome="Expired",
                token_type="RfidTag",
                at=AT,
            ),
            EventKind.ACCESS_CHECKED,
            "Expired",
            {"Type": "RfidTag", "At": AT_TEXT},
        ),
        (
            records.reader_throttled(property_id=1, reader_uid=UID, refused_checks=6, until=AT),
            EventKind.READER_THROTTLED,
            "Throttled",
            {"RefusedChecks": 6, "Until": AT_TEXT},
        ),
        (
            records.guessing_throttled(property_id=1, budget="Caller", misses=20, until=AT),
            EventKind.GUESSING_THROTTLED,
            "Throttled",
            {"Budget": "Caller", "Misses": 20, "Until": AT_TEXT},
        ),
        (
            records.property_created(property_id=1, name="Inn", business_id=7),
            EventKind.PROPERTY_CREATED,
            None,
            {"Name": "Inn", "BusinessId": 7},
        ),
        (
            records.property_changed(property_id=1, collision_check=False),
            EventKind.PROPERTY_CHANGED,
            None,
            {"CollisionCheck": False},
        ),
        (
            records.integration_created(integration_id=3, name="PMS"),
            EventKind.INTEGRATION_CREATED,
            None,
            {"IntegrationId": 3, "Name": "PMS"},
        ),
        (
            records.integration_enabled(integration_id=3),
            EventKind.INTEGRATION_ENABLED,
            None,
            {"IntegrationId": 3},
        ),
        (
            records.integration_disabled(integration_id=3),
            EventKind.INTEGRATION_DISABLED,
            None,
            {"IntegrationId": 3},
        ),
        (
            records.access_token_created(
                property_id=1, access_token_id=4, integration_id=3, scopes=["credentials:read"]
            ),
            EventKind.ACCESS_TOKEN_CREATED,
            None,
            {"AccessTokenId": 4, "IntegrationId": 3, "Scopes": ["credentials:read"]},
        ),
        (
            records.access_token_revoked(property_id=1, access_token_id=4),
            EventKind.ACCESS_TOKEN_REVOKED,
            None,
            {"AccessTokenId": 4},
        ),
        (
            records.user_created(
                property_id=1, user_id=5, email="a@b.c", roles=["AccessToken-List"]
            ),
            EventKind.USER_CREATED,
            None,
            {"UserId": 5, "Email": "a@b.c", "Roles": ["AccessToken-List"]},
        ),
        *(
            (
                builder(property_id=1, user_id=5, email="a@b.c", bearer_tokens_revoked=2),
                kind,
                None,
                {"UserId": 5, "Email": "a@b.c", "BearerTokensRevoked": 2},
            )
            for builder, kind in (
                (records.user_enabled, EventKind.USER_ENABLED),
                (records.user_disabled, EventKind.USER_DISABLED),
                (records.user_password_changed, EventKind.USER_PASSWORD_CHANGED),
            )
        ),
        (
            records.user_refresh_token_reused(property_id=1, user_id=5, bearer_tokens_revoked=2),
            EventKind.USER_REFRESH_TOKEN_REUSED,
            None,
            {"UserId": 5, "BearerTokensRevoked": 2},
        ),
        (
            records.hotspot_session_started(
                property_id=1,
                credential_uid=UID,
                outcome="Granted",
                device_id="d",
                session_uid=OTHER,
            ),
            EventKind.HOTSPOT_SESSION_STARTED,
            "Granted",
            {"DeviceId": "d", "SessionId": str(OTHER)},
        ),
        (
            records.hotspot_session_started(
                property_id=1,
                credential_uid=None,
                outcome="Unknown",
                device_id="d",
                session_uid=None,
            ),
            EventKind.HOTSPOT_SESSION_STARTED,
            "Unknown",
            {"DeviceId": "d", "SessionId": None},
        ),
        (
            records.hotspot_usage(
                property_id=1,
                credential_uid=UID,
                session_uid=OTHER,
                seconds=60,
                taken=60,
                minutes_left=9,
                end_reason=None,
            ),
            EventKind.HOTSPOT_USAGE,
            None,
            {"SessionId": str(OTHER), "Seconds": 60, "SecondsTaken": 60, "MinutesLeft": 9},
        ),
        (
            records.hotspot_usage(
                property_id=1,
                credential_uid=UID,
                session_uid=OTHER,
                seconds=60,
                taken=20,
                minutes_left=0,
                end_reason="NoMinutesLeft",
            ),
            EventKind.HOTSPOT_SESSION_ENDED,
            "NoMinutesLeft",
            {"SessionId": str(OTHER), "Seconds": 60, "SecondsTaken": 20, "MinutesLeft": 0},
        ),
        (
            records.hotspot_session_ended(
                property_id=1, credential_uid=UID, session_uid=OTHER, reason="Deleted"
            ),
            EventKind.HOTSPOT_SESSION_ENDED,
            "Deleted",
            {"SessionId": str(OTHER), "Reason": "Deleted"},
        ),
        (
            records.hotspot_disconnect(
                property_id=1,
                credential_uid=UID,
                outcome="Ack",
                session_uid=OTHER,
                acct_session_id="81200001",
                device_id="AA-BB-CC-DD-EE-FF",
                nas_id=3,
                reason="Deleted",
                attempts=1,
                error_cause=None,
            ),
            EventKind.HOTSPOT_DISCONNECT,
            "Ack",
            {
                "SessionId": str(OTHER),
                "AcctSessionId": "81200001",
                "DeviceId": "AA-BB-CC-DD-EE-FF",
                "NasId": 3,
                "Reason": "Deleted",
                "Attempts": 1,
                "ErrorCause": None,
            },
        ),
    ]
    for event, kind, outcome, details in expected:
        assert _stored(event) == (str(kind), outcome, json.dumps(details))
    built = {kind for _, kind, _, _ in expected}
    assert built == set(EventKind), set(EventKind) - built
