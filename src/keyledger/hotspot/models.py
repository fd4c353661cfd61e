from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID


class SessionReason(StrEnum):
    GRANTED = "Granted"
    UNKNOWN_CREDENTIAL = "UnknownCredential"
    NOT_YET_VALID = "NotYetValid"
    EXPIRED = "Expired"
    NO_MINUTES_LEFT = "NoMinutesLeft"
    TOO_MANY_DEVICES = "TooManyDevices"


@dataclass(frozen=True, slots=True)
class SessionDecision:
    granted: bool
    reason: SessionReason
    session_uid: UUID | None
    credential_uid: UUID | None
    seconds_left: int
    minutes_left: int


@dataclass(frozen=True, slots=True)
class Usage:
    session_uid: UUID
    seconds_left: int
    minutes_left: int
    ended: bool
