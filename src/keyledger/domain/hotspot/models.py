from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class SessionReason(StrEnum):
    GRANTED = "Granted"
    UNKNOWN_CREDENTIAL = "UnknownCredential"
    NOT_YET_VALID = "NotYetValid"
    EXPIRED = "Expired"
    NO_MINUTES_LEFT = "NoMinutesLeft"
    TOO_MANY_DEVICES = "TooManyDevices"
    THROTTLED = "Throttled"


class EndReason(StrEnum):
    """Why a session ended. The first three are withdrawals: the system ended the session at
    once, and the next usage report says so (a RADIUS disconnect can use the same signal)."""

    DELETED = "Deleted"
    EXPIRED = "Expired"
    NO_MINUTES_LEFT = "NoMinutesLeft"
    NOT_YET_VALID = "NotYetValid"
    ENDED = "Ended"  # the client's end report


#: Refusals of a start that count against the guessing budgets (a code that does not let the
#: device online; TooManyDevices is a full voucher, not a wrong code).
MISSES = frozenset(
    {
        SessionReason.UNKNOWN_CREDENTIAL,
        SessionReason.NOT_YET_VALID,
        SessionReason.EXPIRED,
        SessionReason.NO_MINUTES_LEFT,
    }
)


@dataclass(frozen=True, slots=True)
class SessionDecision:
    granted: bool
    reason: SessionReason
    session_uid: UUID | None
    credential_uid: UUID | None
    seconds_left: int
    minutes_left: int
    valid_to: datetime | None = None  # the voucher's ValidTo (a RADIUS Accept's terminate time)


@dataclass(frozen=True, slots=True)
class Usage:
    session_uid: UUID
    seconds_left: int
    minutes_left: int
    ended: bool
    end_reason: EndReason | None = None
