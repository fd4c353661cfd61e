"""RADIUS packets: requests decoded and replies encoded by keyledger, byte for byte as pyrad does
(tests/radius/test_packets.py), with keyledger's own dictionary; pyrad for the Disconnect-Request
keyledger sends and the answers it gets (docs/radius.md, "Design choices")."""

from __future__ import annotations

import hashlib
import hmac
import math
import uuid
from datetime import UTC, datetime
from functools import lru_cache
from importlib.resources import files
from typing import Any
from uuid import UUID

from pyrad import packet as rp
from pyrad import tools as rt
from pyrad.dictionary import Dictionary

from keyledger.kit.inputs import code_key, refused_character, replace_refused

#: Largest RADIUS packet (RFC 2865 section 3).
MAX_PACKET = 4096

ACCESS_REQUEST = rp.AccessRequest
ACCESS_ACCEPT = rp.AccessAccept
ACCESS_REJECT = rp.AccessReject
ACCOUNTING_REQUEST = rp.AccountingRequest
STATUS_SERVER = rp.StatusServer
DISCONNECT_REQUEST = rp.DisconnectRequest
DISCONNECT_ACK = rp.DisconnectACK
DISCONNECT_NAK = rp.DisconnectNAK

PacketError = rp.PacketError

# Attribute codes (RFC 2865, 2866, 2869, 3579) and the WISPr vendor's.
_CHAP_PASSWORD = 3
_REPLY_MESSAGE = 18
_CLASS = 25
_VENDOR_SPECIFIC = 26
_SESSION_TIMEOUT = 27
_IDLE_TIMEOUT = 28
_PROXY_STATE = 33
_CHAP_CHALLENGE = 60
_MESSAGE_AUTHENTICATOR = 80
_ACCT_INTERIM_INTERVAL = 85
_WISPR = 14122
_WISPR_SESSION_TERMINATE_TIME = 9
_ZERO_MESSAGE_AUTHENTICATOR = bytes((_MESSAGE_AUTHENTICATOR, 18)) + bytes(16)


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
    if length < 20 or length > len(data) or length > MAX_PACKET:
        return None
    return data[0], data[1]


# --- requests -----------------------------------------------------------------------------------
# Decoded here rather than through pyrad's ``Packet(packet=...)``, ``verify_message_authenticator``
# and ``PwDecrypt`` (~21 µs an Access-Request on an idle core, ~8 µs here; benchmarks/README.md,
# "our own request decoder"). What the server reads is what pyrad gave: the same verdicts and
# values, checked against pyrad in tests/radius/test_decoder.py, with one deliberate difference:
# an attribute running past the packet's Length drops the packet (pyrad kept a truncated value).

_ZERO_VECTOR = bytes(16)
#: Codes whose Message-Authenticator is computed with a zero Request Authenticator (RFC 2869
#: section 5.14, RFC 5176 section 3.3); others use their own (pyrad's rule for a request).
_ZERO_VECTOR_CODES = frozenset((4, 5, 40, 43))


class Request:
    """A received request: header, attributes parsed once (code, or (vendor, type) for a
    well-formed Vendor-Specific, → raw values in order, as pyrad keeps them) and the secret of
    the NAS it came from."""

    __slots__ = ("_ma_at", "attributes", "authenticator", "code", "id", "raw", "secret")

    def __init__(
        self,
        raw: bytes,
        secret: bytes,
        attributes: dict[int | tuple[int, int], list[bytes]],
        ma_at: int,
    ) -> None:
        self.raw = raw  # the packet up to its Length
        self.code = raw[0]
        self.id = raw[1]
        self.authenticator = raw[4:20]
        self.secret = secret
        self.attributes = attributes
        self._ma_at = ma_at  # offset of the first Message-Authenticator, -1 without one

    @property
    def message_authenticator(self) -> bool:
        return self._ma_at >= 0

    def get(self, key: str | int | tuple[int, int], failobj: Any = None) -> Any:
        """Like pyrad's ``Packet.get``: by code the raw values, by name the values decoded by
        the dictionary (a string as UTF-8, or the raw bytes when it is not; an integer of the
        wrong length raises ``ValueError``); ``failobj`` when absent or unknown."""
        if not isinstance(key, str):
            return self.attributes.get(key, failobj)
        known = _named(key)
        if known is None:
            return failobj
        values = self.attributes.get(known[0])
        if values is None:
            return failobj
        kind, names = known[1], known[2]
        return [names[v] if v in names else rt.DecodeAttr(kind, v) for v in values]

    def verify_message_authenticator(self) -> bool:
        """HMAC-MD5 with the secret over the packet, its Message-Authenticator zeroed (and the
        Request Authenticator for an Accounting-Request), compared in constant time."""
        at = self._ma_at
        if at < 0 or self.raw[at + 1] != 18:  # pyrad: a value of another length never matches
            return False
        raw = self.raw
        vector = _ZERO_VECTOR if self.code in _ZERO_VECTOR_CODES else self.authenticator
        signed = raw[:4] + vector + raw[20 : at + 2] + _ZERO_VECTOR + raw[at + 18 :]
        return hmac.compare_digest(hmac.digest(self.secret, signed, "md5"), raw[at + 2 : at + 18])

    def verify_accounting_authenticator(self) -> bool:
        """RFC 2866 section 3: MD5(code, identifier, length, 16 zeros, attributes, secret)."""
        raw = self.raw
        expected = hashlib.md5(  # noqa: S324 - RADIUS's Request Authenticator is MD5
            raw[:4] + _ZERO_VECTOR + raw[20:] + self.secret
        ).digest()
        return hmac.compare_digest(expected, self.authenticator)

    def pap_password(self, hidden: bytes) -> str | None:
        """A User-Password decrypted (RFC 2865 section 5.2, every 16-octet block), trailing NULs
        stripped and invalid UTF-8 left out, as pyrad's ``PwDecrypt``; None when its length is
        not a multiple of 16."""
        if len(hidden) % 16:
            return None
        clear = bytearray()
        last = self.authenticator
        for at in range(0, len(hidden), 16):
            block = hidden[at : at + 16]
            pad = hashlib.md5(self.secret + last).digest()  # noqa: S324 - RFC 2865's cipher
            clear += (int.from_bytes(pad, "big") ^ int.from_bytes(block, "big")).to_bytes(16, "big")
            last = block
        return bytes(clear).rstrip(b"\x00").decode("utf-8", errors="ignore")

    def chap_matches(self, password: str) -> bool:
        """RFC 2865 section 2.2: the first CHAP-Password is identifier + MD5(identifier,
        password, challenge), the challenge the first CHAP-Challenge or else the Request
        Authenticator (as pyrad's ``VerifyChapPasswd``, the password stripped)."""
        values = self.attributes.get(_CHAP_PASSWORD)
        if not values or len(values[0]) != 17:
            return False
        response = values[0]
        challenges = self.attributes.get(_CHAP_CHALLENGE)
        challenge = challenges[0] if challenges else self.authenticator
        expected = hashlib.md5(  # noqa: S324 - CHAP is MD5
            response[:1] + password.strip().encode("utf-8") + challenge
        ).digest()
        return hmac.compare_digest(response[1:], expected)


@lru_cache(maxsize=256)
def _named(name: str) -> tuple[int | tuple[int, int], str, dict[bytes, str]] | None:
    """An attribute of the dictionary by name: its key, type and VALUE names (raw → name)."""
    attribute = dictionary().attributes.get(name)
    if attribute is None:
        return None
    if attribute.has_tag or attribute.encrypt or attribute.type == "tlv":
        raise ValueError(f"{name}: tagged, encrypted or TLV attributes are not decoded here")
    key: int | tuple[int, int] = attribute.code
    if attribute.vendor:
        key = (dictionary().vendors.GetForward(attribute.vendor), attribute.code)
    names = {raw: value for value, raw in attribute.values.forward.items()}
    return key, attribute.type, names


def _vendor_specific(value: bytes) -> list[tuple[int | tuple[int, int], bytes]]:
    """A Vendor-Specific value as pyrad splits it: (vendor, type) sub-attributes when their
    lengths add up (RFC 2865 section 5.26), else the raw attribute 26."""
    if len(value) < 6:
        return [(_VENDOR_SPECIFIC, value)]
    vendor = int.from_bytes(value[:4], "big")
    found: list[tuple[int | tuple[int, int], bytes]] = []
    at = 4
    while at < len(value):
        if len(value) - at < 2 or value[at + 1] < 2 or at + value[at + 1] > len(value):
            return [(_VENDOR_SPECIFIC, value)]
        found.append(((vendor, value[at]), value[at + 2 : at + value[at + 1]]))
        at += value[at + 1]
    return found


def decode_request(data: bytes, secret: bytes) -> Request:
    """A datagram as a request (RFC 2865 section 3): at least 20 octets, a Length of 20 to 4096
    no more than the datagram (octets past it are padding), attributes of at least 2 octets
    within it; ``PacketError`` otherwise."""
    size = len(data)
    if size < 20:
        raise PacketError("Packet header is corrupt")
    length = (data[2] << 8) | data[3]
    if length < 20 or length > size or length > MAX_PACKET:
        raise PacketError("Packet has invalid length")
    raw = data if length == size else data[:length]
    attributes: dict[int | tuple[int, int], list[bytes]] = {}
    ma_at = -1
    at = 20
    while at < length:
        if at + 2 > length:
            raise PacketError("Attribute header is corrupt")
        kind, end = raw[at], at + raw[at + 1]
        if end < at + 2:
            raise PacketError("Attribute length is too small")
        if end > length:
            raise PacketError("Attribute runs past the packet")
        value = raw[at + 2 : end]
        if kind == _VENDOR_SPECIFIC:
            for key, sub in _vendor_specific(value):
                attributes.setdefault(key, []).append(sub)
        else:
            values = attributes.get(kind)
            if values is None:
                attributes[kind] = [value]
            else:
                values.append(value)
            if kind == _MESSAGE_AUTHENTICATOR and ma_at < 0:
                ma_at = at
        at = end
    return Request(raw, secret, attributes, ma_at)


def decode_access_request(data: bytes, secret: bytes) -> Request:
    return decode_request(data, secret)


def decode_accounting_request(data: bytes, secret: bytes) -> Request:
    return decode_request(data, secret)


#: Attributes read on every request: (code, a string?). None of them has VALUE names, a tag or
#: encryption in keyledger's dictionary, so their value is the raw one (a string's decoded as
#: pyrad's ``get`` decodes it: UTF-8, or the raw bytes when it is not), without the look-up.
_PLAIN = {
    "User-Name": (1, True),
    "User-Password": (2, False),
    "CHAP-Password": (3, False),
    "Calling-Station-Id": (31, True),
    "Acct-Session-Id": (44, True),
}


def first(packet: Any, name: str) -> Any:
    """The first value of an attribute, or None (also when it cannot be decoded), of a
    ``Request`` or a pyrad packet."""
    plain = _PLAIN.get(name)
    if plain is not None:
        values = packet.get(plain[0])  # raw values, in both
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
    """A text attribute ("" when absent), with each character the input policy refuses (a NUL,
    another control character, a lone surrogate: ``kit.inputs``) replaced by U+FFFD: such a
    value stays apart from others yet can be stored, logged and compared (PostgreSQL refuses a
    NUL in text, which would fail the group commit of every request decided with it)."""
    value = first(packet, name)
    return replace_refused(value) if isinstance(value, str) else ""


def identifier(packet: Any, name: str, limit: int) -> str:
    """An identifying text attribute (``Calling-Station-Id``, ``Acct-Session-Id``; "" when
    absent), at most ``limit`` characters: as sent when it is text the input policy takes and
    holds no backslash, else every octet of it spelled ``\\xNN`` (cut at a whole one), so that
    two values stay two (a NAS sending a MAC address as six raw octets) and the octets can be
    sent back as they came (``identifier_octets``: a Disconnect-Request). ``text`` would make
    every value that is not UTF-8 ``""`` and two refused characters the same U+FFFD: any number
    of such devices then shared one device's place under ``UserLimit``, and reports under such
    ids were answered without being counted. (A value cut at ``limit`` is the same as another
    with the same beginning: 200 characters of a device, 253 of a session id, as before.)"""
    plain = _PLAIN[name]
    values = packet.get(plain[0])
    if not values:
        return ""
    raw = values[0]
    value = raw if isinstance(raw, bytes) else str(raw).encode("utf-8")
    try:
        decoded = value.decode("utf-8")
    except UnicodeDecodeError:
        decoded = None
    if decoded is not None and "\\" not in decoded and refused_character(decoded) is None:
        return decoded[:limit]
    return "".join(f"\\x{octet:02x}" for octet in value[: limit // 4])


def identifier_octets(value: str) -> bytes:
    """The octets an ``identifier`` came from (as far as it was kept)."""
    if value.startswith("\\x"):
        return bytes.fromhex(value.replace("\\x", ""))
    return value.encode("utf-8")


def authentic_access_request(request: Request, *, require_message_authenticator: bool) -> bool:
    """Whether an Access-Request (or Status-Server) is signed with the secret: its
    Message-Authenticator is valid (required unless the NAS was added without). Without one
    nothing proves the secret."""
    if request.message_authenticator:
        return request.verify_message_authenticator()
    return not require_message_authenticator


def authentic_accounting_request(request: Request) -> bool:
    """Whether an Accounting-Request's authenticator (and Message-Authenticator, when it has one)
    is signed with the secret (RFC 2866 section 3)."""
    if not request.verify_accounting_authenticator():
        return False
    return not request.message_authenticator or request.verify_message_authenticator()


def proven_code(request: Request) -> str:
    """The voucher code of an Access-Request: its User-Name, when its User-Password (PAP) or
    CHAP-Password proves the same code; else ``""`` (a code no voucher has).

    CHAP counts only in a request with a Message-Authenticator (verified before this is called):
    MD5(id, code, challenge) involves no shared secret, so without one anybody able to send from
    the NAS's address could log in (a NAS added with ``--allow-missing-message-authenticator``).
    PAP's password is encrypted with the secret, so a wrong secret proves nothing."""
    user = first(request, "User-Name")
    if not isinstance(user, str) or not user or refused_character(user) is not None:
        return ""  # no voucher code holds a refused character
    password = first(request, "User-Password")
    if isinstance(password, bytes):
        clear = request.pap_password(password)
        if clear is None:
            return ""
        return user if code_key(clear.strip()) == code_key(user.strip()) else ""
    if first(request, "CHAP-Password") is not None:
        if not request.message_authenticator:
            return ""
        return user if request.chap_matches(user) else ""
    return ""


# --- replies ------------------------------------------------------------------------------------
# Encoded here rather than through pyrad's ``CreateReply``/``ReplyPacket`` (~0.3 ms an
# Access-Accept, more than the decision's statements; issue 14's RADIUS benchmark): the same
# bytes, checked against pyrad in tests/radius/test_packets.py. A reply is: the
# Message-Authenticator first (replies to Access-Request and Status-Server, as pyrad signs them;
# RFC 3579 section 3.2), the request's Proxy-State attributes in order (RFC 2865 section 5.33),
# then the reply's own attributes; the Response Authenticator is MD5(code, identifier, length,
# Request Authenticator, attributes, secret).


def _attribute(code: int, value: bytes) -> bytes:
    if len(value) > 253:
        raise ValueError(f"RADIUS attribute {code} holds at most 253 octets")
    return bytes((code, len(value) + 2)) + value


def _integer(code: int, value: int) -> bytes:
    return _attribute(code, value.to_bytes(4, "big"))


#: Room a reply to an Access-Request needs beside its Proxy-State (Message-Authenticator,
#: Session-Timeout, Acct-Interim-Interval, Idle-Timeout, Class, WISPr-Session-Terminate-Time, or
#: a Reply-Message), with a margin: ~110 octets used.
ACCESS_REPLY_ROOM = 160


def reply_fits(request: Any, room: int) -> bool:
    """Whether a reply with ``room`` octets of attributes of its own, and the request's
    Proxy-State copied (as a reply must), stays within ``MAX_PACKET``: a request filled with
    Proxy-State up to 4,096 octets leaves no room, and a NAS or proxy may drop a longer reply."""
    proxy = request.get(_PROXY_STATE) or []
    return 20 + sum(2 + len(value) for value in proxy) + room <= MAX_PACKET


def _reply(request: Any, code: int, attributes: bytes, *, signed: bool) -> bytes:
    """A reply to ``request`` with ``attributes`` (encoded), Proxy-State copied, signed with the
    request's secret (and a Message-Authenticator when ``signed``)."""
    proxy = request.get(_PROXY_STATE)  # raw values, as received
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
    # The ids as the NAS sent them (raw octets of a value that was not text: ``identifier``).
    request["Acct-Session-Id"] = identifier_octets(acct_session_id)
    if device_id:
        request["Calling-Station-Id"] = identifier_octets(device_id)
    request["Event-Timestamp"] = int(now.timestamp())
    request.add_message_authenticator()
    return request


def decode_reply(request: Any, data: bytes) -> Any:
    return rp.CoAPacket(packet=data, secret=request.secret, dict=dictionary())
