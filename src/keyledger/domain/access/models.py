from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID


class Reason(StrEnum):
    """Why a check was granted or refused (a closed list)."""

    GRANTED = "Granted"
    UNKNOWN_CREDENTIAL = "UnknownCredential"
    NOT_YET_VALID = "NotYetValid"
    EXPIRED = "Expired"
    DELETED = "Deleted"
    NO_PERMISSION = "NoPermission"
    THROTTLED = "Throttled"


#: When several credentials share the code, the most telling refusal is reported.
REFUSAL_ORDER = (
    Reason.NO_PERMISSION,
    Reason.NOT_YET_VALID,
    Reason.EXPIRED,
    Reason.DELETED,
)


@dataclass(frozen=True, slots=True)
class DoorCheck:
    reader_uid: UUID
    token_type: str
    value: str
    at: datetime


@dataclass(frozen=True, slots=True)
class Decision:
    granted: bool
    reason: Reason
    credential_uid: UUID | None
    at: datetime
    reader_uid: UUID
    property_id: int
    throttled_until: datetime | None = None
    #: The access token that asked (the guessing budget it counts against).
    caller: str = ""


@dataclass(frozen=True, slots=True)
class ReaderPolicy:
    """More than ``failures`` refused checks within ``window_seconds`` lock a reader for
    ``cooldown_seconds``: every check there is then ``Throttled``."""

    failures: int = 10
    window_seconds: int = 300
    cooldown_seconds: int = 300
