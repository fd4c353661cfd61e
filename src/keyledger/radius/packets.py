"""RADIUS packets: pyrad's codec and authenticators with keyledger's own dictionary."""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from collections import OrderedDict
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


#: Attributes read on every request: (code, a string?). None of them has VALUE names, a tag or
#: encryption in keyledger's dictionary, so their value is the raw one (a string's decoded as
#: pyrad's ``get`` decodes it: UTF-8, or the raw bytes when it is not), without pyrad's look-up.
_PLAIN = {
    "User-Name": (1, True),
    "User-Password": (2, False),
    "CHAP-Password": (3, False),
    "Calling-Station-Id": (31, True),
    "Acct-Session-Id": (44, True),
}


def first(packet: Any, name: str) -> Any:
    """The first value of an attribute, or None (also when it cannot be decoded)."""
    plain = _PLAIN.get(name)
    if plain is not None:
        values = OrderedDict.get(packet, plain[0])
        if not values:
            return None
        value = values[0]
        if plain[1] and isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return value
        return value
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


# --- replies ------------------------------------------------------------------------------------
# Encoded here rather than through pyrad's ``CreateReply``/``ReplyPacket`` (~0.3 ms an
# Access-Accept, more than the decision's statements; issue 14's RADIUS benchmark): the same
# bytes, checked against pyrad in tests/radius/test_packets.py. A reply is: the
# Message-Authenticator first (replies to Access-Request and Status-Server, as pyrad signs them;
# RFC 3579 section 3.2), the request's Proxy-State attributes in order (RFC 2865 section 5.33),
# then the reply's own attributes; the Response Authenticator is MD5(code, identifier, length,
# Request Authenticator, attributes, secret).

_SESSION_TIMEOUT = 27
_IDLE_TIMEOUT = 28
_CLASS = 25
_REPLY_MESSAGE = 18
_PROXY_STATE = 33
_VENDOR_SPECIFIC = 26
_MESSAGE_AUTHENTICATOR = 80
_ACCT_INTERIM_INTERVAL = 85
_WISPR = 14122
_WISPR_SESSION_TERMINATE_TIME = 9
_ZERO_MESSAGE_AUTHENTICATOR = bytes((_MESSAGE_AUTHENTICATOR, 18)) + bytes(16)


def _attribute(code: int, value: bytes) -> bytes:
    if len(value) > 253:
        raise ValueError(f"RADIUS attribute {code} holds at most 253 octets")
    return bytes((code, len(value) + 2)) + value


def _integer(code: int, value: int) -> bytes:
    return _attribute(code, value.to_bytes(4, "big"))


def _reply(request: Any, code: int, attributes: bytes, *, signed: bool) -> bytes:
    """A reply to ``request`` with ``attributes`` (encoded), Proxy-State copied, signed with the
    request's secret (and a Message-Authenticator when ``signed``)."""
    proxy = OrderedDict.get(request, _PROXY_STATE)  # raw values, as received
    if proxy:
        attributes = b"".join(_attribute(_PROXY_STATE, value) for value in proxy) + attributes
    if signed:
        attributes = _ZERO_MESSAGE_AUTHENTICATOR + attributes
    head = bytes((code, request.id)) + (20 + len(attributes)).to_bytes(2, "big")
    if signed:
        signature = hmac.digest(request.secret, head + request.authenticator + attributes, "md5")
        attributes = attributes[:2] + signature + attributes[18:]
    authenticator = hashlib.md5(  # noqa: S324 - RADIUS's Response Authenticator is MD5
        head + request.authenticator + attributes + request.secret
    ).digest()
    return head + authenticator + attributes


def _signs_reply(request: Any) -> bool:
    """pyrad signs a reply to an Access-Request or a Status-Server (BlastRADIUS)."""
    return bool(request.code in (ACCESS_REQUEST, STATUS_SERVER))


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
    # A 32-bit attribute: a voucher with more seconds left than it holds (over ~71.5 million
    # minutes) is given the largest it can say.
    attributes = (
        _integer(_SESSION_TIMEOUT, min(max(1, timeout), 2**32 - 1))
        + _integer(_ACCT_INTERIM_INTERVAL, interim_seconds)
        + _integer(_IDLE_TIMEOUT, idle_seconds)
        + _attribute(_CLASS, str(session_uid).encode("ascii"))
    )
    if valid_to is not None:
        terminate = valid_to.astimezone(UTC).replace(microsecond=0).isoformat().encode("utf-8")
        attributes += _attribute(
            _VENDOR_SPECIFIC,
            _WISPR.to_bytes(4, "big") + _attribute(_WISPR_SESSION_TERMINATE_TIME, terminate),
        )
    return _reply(request, ACCESS_ACCEPT, attributes, signed=_signs_reply(request))


def reject(request: Any, *, reason: str) -> bytes:
    """An Access-Reject naming the reason the HTTP API gives; signed, with a
    Message-Authenticator."""
    attributes = _attribute(_REPLY_MESSAGE, reason.encode("utf-8"))
    return _reply(request, ACCESS_REJECT, attributes, signed=_signs_reply(request))


def status_accept(request: Any) -> bytes:
    """The answer to a Status-Server (RFC 5997): an Access-Accept, signed."""
    return _reply(request, ACCESS_ACCEPT, b"", signed=_signs_reply(request))


def accounting_response(request: Any) -> bytes:
    """An Accounting-Response to an Accounting-Request (no Message-Authenticator, as pyrad)."""
    return _reply(request, rp.AccountingResponse, b"", signed=False)


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
