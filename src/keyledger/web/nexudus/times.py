"""Nexudus time values: ISO 8601; a value without a zone is UTC. The precision written is kept,
because a search for ``2020-01-01`` means that day and one for ``2020-01-01T20:32`` that minute."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_TIME = re.compile(
    r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"
)


def parse_time(text: str) -> tuple[datetime, timedelta]:
    """The instant (UTC, whole seconds) and the span its precision covers."""
    match = _TIME.match(text.strip())
    if match is None:
        raise ValueError("is not a valid date and time")
    date, hour, minute, second, _fraction, zone = match.groups()
    if hour is None:
        span, clock = timedelta(days=1), "00:00:00"
    elif second is None:
        span, clock = timedelta(minutes=1), f"{hour}:{minute}:00"
    else:
        span, clock = timedelta(seconds=1), f"{hour}:{minute}:{second}"
    try:
        moment = datetime.fromisoformat(f"{date}T{clock}{zone or ''}".replace("Z", "+00:00"))
    except ValueError:
        raise ValueError("is not a valid date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC), span
    except OverflowError:  # 0001-01-01T00:00+01:00, 9999-12-31T23:59-01:00: not in year 1..9999
        raise ValueError("is outside the years 1 to 9999 in UTC") from None


#: The last instant keyledger can represent.
LATEST = datetime.max.replace(microsecond=0, tzinfo=UTC)


def last_second(moment: datetime, span: timedelta) -> datetime:
    """The last whole second of the span written (``2020-01-01``: 23:59:59 that day); a span
    reaching past year 9999 ends at its last second."""
    if moment > LATEST - span:
        return LATEST
    return moment + span - timedelta(seconds=1)
