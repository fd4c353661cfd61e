"""RADIUS packets: pyrad's codec and authenticators with keyledger's own dictionary."""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any
from uuid import UUID

from pyrad import packet as rp
from pyrad.dictionary import Dictionary

from keyledger.kit.inputs import code_key

ACCESS_REQUEST = rp.AccessRequest
ACCESS_ACCEPT = rp.AccessAccept
ACCESS_REJECT = rp.AccessReject
ACCOUNTING_REQUEST = rp.AccountingRequest
STATUS_SERVER = rp.StatusServer
DISCONNECT_REQUEST = rp.DisconnectRequest
DISCONNECT_ACK = rp.DisconnectACK
DISCONNECT_NAK = rp.DisconnectNAK

PacketError = rp.PacketError


@lru_cache(maxsize=1)
def dictionary() -> Dictionary:
    """The attributes keyledger knows (the ``dictionary`` file of this package)."""
    with (files("keyledger.radius") / "dictionary").open("r", encoding="utf-8") as text:
        return Dictionary(text)


def header(data: bytes) -> tuple[int, int] | None:
    """(code, identifier) of a datagram that can be a RADIUS packet; None otherwise."""
    if len(data) < 20:
        return None
    length = int.from_bytes(data[2:4], "big")
    if length < 20 or length > len(data) or length > 4096:
        return None
    return data[0], data[1]


def first(packet: Any, name: str) -> Any:
    """The first value of an attribute, or None (also when it cannot be decoded)."""
    try:
        values = packet.get(name)
    except (UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return values[0] if values else None


def text(packet: Any, name: str) -> str:
    value = first(packet, name)
    return value if isinstance(value, str) else ""


def decode_access_request(data: bytes, secret: bytes) -> Any:
    return rp.AuthPacket(packet=data, secret=secret, dict=dictionary())


def decode_accounting_request(data: bytes, secret: bytes) -> Any:
    return rp.AcctPacket(packet=data, secret=secret, dict=dictionary())


def authentic_access_request(request: Any, *, require_message_authenticator: bool) -> bool:
    """Whether an Access-Request is signed with the secret: its Message-Authenticator is valid
    (required unless the NAS was added without). Without one nothing proves the secret."""
    if request.message_authenticator:
        return bool(request.verify_message_authenticator())
    return not require_message_authenticator


def authentic_accounting_request(request: Any) -> bool:
    """Whether an Accounting-Request's authenticator (and Message-Authenticator, when it has one)
    is signed with the secret (RFC 2866 section 3)."""
    if not request.VerifyAcctRequest():
        return False
    return not request.message_authenticator or bool(request.verify_message_authenticator())


def proven_code(request: Any) -> str:
    """The voucher code of an Access-Request: its User-Name, when its User-Password (PAP) or
    CHAP-Password proves the same code; else ``""`` (a code no voucher has).

    CHAP counts only in a request with a Message-Authenticator (verified before this is called):
    MD5(id, code, challenge) involves no shared secret, so without one anybody able to send from
    the NAS's address could log in (a NAS added with ``--allow-missing-message-authenticator``).
    PAP's password is encrypted with the secret, so a wrong secret proves nothing."""
    user = text(request, "User-Name")
    if not user:
        return ""
    password = first(request, "User-Password")
    if isinstance(password, bytes):
        try:
            clear = request.PwDecrypt(password)
        except PacketError:
            return ""
        return user if code_key(clear.strip()) == code_key(user.strip()) else ""
    if first(request, "CHAP-Password") is not None:
        if not request.message_authenticator:
            return ""
        return user if request.VerifyChapPasswd(user) else ""
    return ""


def accept(
    request: Any,
    *,
    session_uid: UUID,
    seconds_left: int,
    valid_to: datetime | None,
    now: datetime,
    interim_seconds: int,
    idle_seconds: int,
) -> bytes:
    """An Access-Accept: Session-Timeout (never past ValidTo), Acct-Interim-Interval,
    Idle-Timeout, Class (the session id), WISPr-Session-Terminate-Time with a ValidTo; signed,
    with a Message-Authenticator."""
    timeout = seconds_left
    if valid_to is not None:
        timeout = min(timeout, max(1, math.ceil((valid_to - now).total_seconds())))
    reply = request.CreateReply()
    reply.code = ACCESS_ACCEPT
    # A 32-bit attribute: a voucher with more seconds left than it holds (over ~71.5 million
    # minutes) is given the largest it can say.
    reply["Session-Timeout"] = min(max(1, timeout), 2**32 - 1)
    reply["Acct-Interim-Interval"] = interim_seconds
    reply["Idle-Timeout"] = idle_seconds
    reply["Class"] = str(session_uid).encode("ascii")
    if valid_to is not None:
        reply["WISPr-Session-Terminate-Time"] = (
            valid_to.astimezone(UTC).replace(microsecond=0).isoformat()
        )
    return bytes(reply.ReplyPacket())


def reject(request: Any, *, reason: str) -> bytes:
    """An Access-Reject naming the reason the HTTP API gives; signed, with a
    Message-Authenticator."""
    reply = request.CreateReply()
    reply.code = ACCESS_REJECT
    reply["Reply-Message"] = reason
    return bytes(reply.ReplyPacket())


def status_accept(request: Any) -> bytes:
    """The answer to a Status-Server (RFC 5997): an Access-Accept, signed."""
    reply = request.CreateReply()
    reply.code = ACCESS_ACCEPT
    return bytes(reply.ReplyPacket())


def accounting_response(request: Any) -> bytes:
    return bytes(request.CreateReply().ReplyPacket())


def session_class(request: Any) -> UUID | None:
    """The session id an Access-Accept gave as Class, echoed in accounting."""
    try:
        values = request.get("Class") or []
    except (ValueError, KeyError, TypeError):
        return None
    for value in values:
        try:
            return uuid.UUID(bytes(value).decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            continue
    return None


def status_type(request: Any) -> str:
    value = first(request, "Acct-Status-Type")
    return value if isinstance(value, str) else str(value)


def integer(request: Any, name: str) -> int:
    value = first(request, name)
    return value if isinstance(value, int) else 0


def timestamp(request: Any, name: str = "Event-Timestamp") -> datetime | None:
    """A ``date`` attribute (seconds since 1970, UTC), or None when absent or undecodable."""
    value = first(request, name)
    if not isinstance(value, int):
        return None
    return datetime.fromtimestamp(value, tz=UTC)


def disconnect_request(
    *,
    secret: bytes,
    identifier: int,
    user_name: str,
    acct_session_id: str,
    device_id: str,
    now: datetime,
) -> Any:
    """An RFC 5176 Disconnect-Request naming the session, with an Event-Timestamp (``now``, the
    sending time: RFC 5176 section 3.4 recommends it against replays) and a
    Message-Authenticator."""
    request = rp.CoAPacket(code=DISCONNECT_REQUEST, id=identifier, secret=secret, dict=dictionary())
    request["User-Name"] = user_name
    request["Acct-Session-Id"] = acct_session_id
    if device_id:
        request["Calling-Station-Id"] = device_id
    request["Event-Timestamp"] = int(now.timestamp())
    request.add_message_authenticator()
    return request


def decode_reply(request: Any, data: bytes) -> Any:
    return rp.CoAPacket(packet=data, secret=request.secret, dict=dictionary())
