"""keyledger's request decoder (radius/packets.py: ``decode_request``, ``Request``) against pyrad,
the decoder the server used before: for generated datagrams — PAP, CHAP, accounting with Class
and Proxy-State, with and without Message-Authenticator, wrong secrets, truncated, padded,
garbled, attribute lengths 0 and 1, Length fields that do not match — the verdict (answered or
dropped) and every value the server reads must be pyrad's. One deliberate difference: an
attribute running past the packet's Length drops the packet (pyrad keeps a truncated value)."""

from __future__ import annotations

import hashlib
import hmac
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pyrad import packet as rp

from keyledger.kit.inputs import code_key, refused_character
from keyledger.radius import packets

SECRET = b"testing123"
OTHER_SECRET = b"another secret"
USERS = ["B000001", "lobby 42", "Lobby ünï", " padded ", "x" * 40]
REASON = "UnknownCredential"


# --- the reference: the server's reading of a datagram with pyrad (the code before the decoder) --


def _pyrad_authentic_access_request(request: Any, *, require_message_authenticator: bool) -> bool:
    if request.message_authenticator:
        return bool(request.verify_message_authenticator())
    return not require_message_authenticator


def _pyrad_proven_code(request: Any) -> str:
    user = packets.text(request, "User-Name")
    if not user or refused_character(packets.first(request, "User-Name")):
        return ""  # keyledger's input policy: no voucher code holds a refused character
    password = packets.first(request, "User-Password")
    if isinstance(password, bytes):
        try:
            clear = request.PwDecrypt(password)
        except rp.PacketError:
            return ""
        return user if code_key(clear.strip()) == code_key(user.strip()) else ""
    if packets.first(request, "CHAP-Password") is not None:
        if not request.message_authenticator:
            return ""
        return user if request.VerifyChapPasswd(user) else ""
    return ""


def _reads(request: Any, port: str, proven: Any) -> dict[str, Any]:
    """Every value the server reads of an answered request (radius/server.py)."""
    values: dict[str, Any] = {
        "code": request.code,
        "id": request.id,
        "authenticator": request.authenticator,
        "Proxy-State": request.get(33),
        "User-Name": packets.text(request, "User-Name"),
        "Calling-Station-Id": packets.text(request, "Calling-Station-Id"),
    }
    if port == "auth":
        values["proven"] = proven(request)
    else:
        values.update(
            status=packets.status_type(request),
            acct_session_id=packets.text(request, "Acct-Session-Id"),
            session_time=packets.integer(request, "Acct-Session-Time"),
            delay=packets.integer(request, "Acct-Delay-Time"),
            timestamp=packets.timestamp(request),
            session_class=packets.session_class(request),
        )
    return values


def pyrad_reading(
    data: bytes, port: str, require_message_authenticator: bool
) -> tuple[Any, dict[str, Any]] | None:
    """The decoded request and what the server read with pyrad; None: dropped."""
    head = packets.header(data)
    accepted = (rp.AccessRequest, rp.StatusServer) if port == "auth" else (rp.AccountingRequest,)
    if head is None or head[0] not in accepted:
        return None
    factory = rp.AuthPacket if port == "auth" else rp.AcctPacket
    try:
        request = factory(packet=data, secret=SECRET, dict=packets.dictionary())
    except rp.PacketError:
        return None
    if head[0] == rp.StatusServer:
        if not (request.message_authenticator and request.verify_message_authenticator()):
            return None
    elif port == "auth":
        if not _pyrad_authentic_access_request(
            request, require_message_authenticator=require_message_authenticator
        ):
            return None
    elif not request.VerifyAcctRequest() or (
        request.message_authenticator and not request.verify_message_authenticator()
    ):
        return None
    return request, _reads(request, port, _pyrad_proven_code)


def our_reading(
    data: bytes, port: str, require_message_authenticator: bool
) -> tuple[packets.Request, dict[str, Any]] | None:
    """The same with keyledger's decoder, as radius/server.py calls it."""
    head = packets.header(data)
    accepted = (rp.AccessRequest, rp.StatusServer) if port == "auth" else (rp.AccountingRequest,)
    if head is None or head[0] not in accepted:
        return None
    decode = packets.decode_access_request if port == "auth" else packets.decode_accounting_request
    try:
        request = decode(data, SECRET)
    except packets.PacketError:
        return None
    if head[0] == rp.StatusServer:
        if not (request.message_authenticator and request.verify_message_authenticator()):
            return None
    elif port == "auth":
        if not packets.authentic_access_request(
            request, require_message_authenticator=require_message_authenticator
        ):
            return None
    elif not packets.authentic_accounting_request(request):
        return None
    return request, _reads(request, port, packets.proven_code)


def overruns(data: bytes) -> bool:
    """Whether a datagram whose header is sound has an attribute running past its Length (the
    one case where keyledger's verdict is stricter than pyrad's)."""
    if packets.header(data) is None:
        return False
    length = int.from_bytes(data[2:4], "big")
    at = 20
    while at + 2 <= length:
        if data[at + 1] < 2:
            return False  # both drop it
        if at + data[at + 1] > length:
            return True
        at += data[at + 1]
    return False


def assert_same(data: bytes, port: str, require_message_authenticator: bool = True) -> bool:
    """Ours and pyrad's verdicts and values are the same (ours drops an overrunning attribute);
    then the replies built from our decoding are the bytes pyrad builds. Whether answered."""
    theirs = pyrad_reading(data, port, require_message_authenticator)
    mine = our_reading(data, port, require_message_authenticator)
    if overruns(data):
        assert mine is None
        return False
    assert (mine is None) == (theirs is None)
    if mine is None or theirs is None:
        return False
    assert mine[1] == theirs[1]
    ours, pyrads = mine[0], theirs[0]
    # Every attribute of the dictionary reads as pyrad's ``get`` reads it (or fails alike), and
    # the raw attributes are pyrad's, in pyrad's order.
    assert list(ours.attributes.items()) == list(OrderedDict.items(pyrads))
    for name in packets.dictionary().attributes:
        assert _outcome(ours, name) == _outcome(pyrads, name), name
    if port == "acct":
        expected = bytes(pyrads.CreateReply().ReplyPacket())
        assert packets.accounting_response(ours) == expected
    elif ours.code == rp.StatusServer:
        reply = pyrads.CreateReply()
        assert packets.status_accept(ours) == bytes(reply.ReplyPacket())
    else:
        reply = pyrads.CreateReply()
        reply.code = rp.AccessReject
        reply["Reply-Message"] = REASON
        assert packets.reject(ours, reason=REASON) == bytes(reply.ReplyPacket())
    return True


def _outcome(packet: Any, name: str) -> tuple[str, Any]:
    try:
        return "ok", packet.get(name)
    except Exception as error:  # noqa: BLE001 - the kind of failure is what is compared
        return "raises", type(error).__name__


# --- building datagrams -------------------------------------------------------------------------


def _attribute(kind: int, value: bytes) -> bytes:
    return bytes((kind, len(value) + 2)) + value


def _pap(password: bytes, secret: bytes, authenticator: bytes) -> bytes:
    sender = rp.AuthPacket(secret=secret, authenticator=authenticator)
    return bytes(sender.PwCrypt(password))


def _chap(identifier: int, password: bytes, challenge: bytes) -> bytes:
    digest = hashlib.md5(bytes((identifier,)) + password + challenge).digest()  # noqa: S324
    return bytes((identifier,)) + digest


@dataclass
class Plan:
    """A datagram to build: header, attributes (placeholders resolved once the authenticator is
    known), how it is signed and how it is damaged afterwards."""

    code: int
    identifier: int
    authenticator: bytes
    attributes: list[tuple[str, Any]]
    ma: str  # none, first, last, twice, short
    ma_secret: bytes
    acct_secret: bytes | None  # accounting authenticator's secret; None: random
    damage: tuple[str, int]


def build(plan: Plan) -> bytes:
    authenticator = plan.authenticator
    body = b""
    chap_challenge: bytes | None = None
    for kind, value in plan.attributes:
        if kind == "challenge":
            chap_challenge = value
    for kind, value in plan.attributes:
        if kind == "raw":
            body += _attribute(*value)
        elif kind == "pap":
            password, secret = value
            body += _attribute(2, _pap(password.encode(), secret, authenticator))
        elif kind == "chap":
            identifier, password = value
            challenge = chap_challenge if chap_challenge is not None else authenticator
            body += _attribute(3, _chap(identifier, password.encode(), challenge))
        elif kind == "challenge":
            body += _attribute(60, value)
        elif kind == "bytes":
            body += value  # already encoded (vendor-specific, garbage)
    zero_ma = _attribute(80, bytes(16))
    if plan.ma in ("first", "twice"):
        body = zero_ma + body
    if plan.ma in ("last", "twice"):
        body += zero_ma
    if plan.ma == "short":
        body = _attribute(80, bytes(15)) + body
    head = bytes((plan.code, plan.identifier)) + (20 + len(body)).to_bytes(2, "big")
    accounting = plan.code == rp.AccountingRequest
    vector = bytes(16) if accounting else authenticator
    if plan.ma in ("first", "twice", "last"):
        signature = hmac.digest(plan.ma_secret, head + vector + body, "md5")
        at = body.index(zero_ma)
        body = body[: at + 2] + signature + body[at + 18 :]
    if accounting and plan.acct_secret is not None:
        authenticator = hashlib.md5(  # noqa: S324 - RFC 2866's Request Authenticator
            head + bytes(16) + body + plan.acct_secret
        ).digest()
    data = head + authenticator + body
    how, amount = plan.damage
    if how == "truncate":
        data = data[: max(0, len(data) - 1 - amount % len(data))]
    elif how == "pad":
        data += bytes(range(amount % 64 + 1))
    elif how == "length+":
        data = data[:2] + (len(data) + 1 + amount % 8).to_bytes(2, "big") + data[4:]
    elif how == "length-":
        shorter = max(0, len(data) - 1 - amount % 40)
        data = data[:2] + shorter.to_bytes(2, "big") + data[4:]
    elif how == "flip":
        at = amount % len(data)
        data = data[:at] + bytes((data[at] ^ (1 << amount % 8),)) + data[at + 1 :]
    elif how == "attribute-length" and len(data) > 21:
        data = data[:21] + bytes((amount % 2,)) + data[22:]  # the first attribute's: 0 or 1
    elif how == "overrun" and len(data) > 21:
        data = data[:21] + bytes((min(255, len(data) - 20 + 1 + amount % 4),)) + data[22:]
    elif how == "huge":
        data = data[:2] + (4097 + amount).to_bytes(2, "big") + data[4:] + bytes(4097 + amount)
    return data


_integer = st.one_of(
    st.integers(0, 2**32 - 1).map(lambda n: n.to_bytes(4, "big")),
    st.binary(max_size=6),
)
_text = st.one_of(
    st.sampled_from(USERS).map(str.encode),
    st.binary(max_size=30),
    st.just(b"\xff\xfe not utf-8"),
    st.just(b""),
)
_vendor_specific = st.one_of(
    # well formed: WISPr (in the dictionary) or another vendor, one or two sub-attributes
    st.tuples(
        st.sampled_from([14122, 9, 311]),
        st.lists(st.tuples(st.integers(0, 255), st.binary(max_size=12)), min_size=1, max_size=2),
    ).map(
        lambda v: _attribute(
            26, v[0].to_bytes(4, "big") + b"".join(_attribute(t, x) for t, x in v[1])
        )
    ),
    st.binary(max_size=12).map(lambda v: _attribute(26, v)),  # short or garbled: kept raw
)


def _login(user: str) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """A User-Name with a PAP password or a CHAP response: right, wrong, or with another
    secret."""
    name = ("raw", (1, user.encode()))
    return st.one_of(
        st.just([name, ("pap", (user, SECRET))]),
        st.tuples(
            st.sampled_from([user, user.upper(), f" {user} ", "other"]),
            st.sampled_from([SECRET, OTHER_SECRET]),
        ).map(lambda v: [name, ("pap", v)]),
        st.tuples(st.integers(0, 255), st.sampled_from([user, "other"])).map(
            lambda v: [name, ("chap", v)]
        ),
        st.tuples(st.integers(0, 255), st.binary(max_size=20)).map(
            lambda v: [name, ("challenge", v[1]), ("chap", (v[0], user))]
        ),
    )


_single = st.one_of(
    st.tuples(st.just("raw"), st.tuples(st.sampled_from([1, 31, 44, 30, 32, 87]), _text)),
    st.tuples(
        st.just("raw"),
        st.tuples(st.sampled_from([5, 6, 40, 41, 46, 55, 61, 101, 4, 8, 95]), _integer),
    ),
    st.tuples(
        st.just("raw"),
        st.tuples(
            st.just(40), st.sampled_from([1, 2, 3, 7, 8, 9]).map(lambda n: n.to_bytes(4, "big"))
        ),
    ),
    st.tuples(
        st.just("raw"),
        st.tuples(
            st.just(25),
            st.one_of(
                st.uuids().map(lambda u: str(u).encode("ascii")),
                st.binary(max_size=40),
            ),
        ),
    ),
    st.tuples(st.just("raw"), st.tuples(st.sampled_from([2, 3, 33, 60]), st.binary(max_size=40))),
    st.tuples(st.just("raw"), st.tuples(st.integers(0, 255), st.binary(max_size=20))),
    st.tuples(
        st.just("pap"),
        st.tuples(
            st.one_of(st.sampled_from(USERS), st.text(max_size=32)),  # ≤ 128 octets
            st.sampled_from([SECRET, SECRET, OTHER_SECRET]),
        ),
    ),
    st.tuples(st.just("chap"), st.tuples(st.integers(0, 255), st.sampled_from(USERS))),
    st.tuples(st.just("challenge"), st.binary(max_size=20)),
    st.tuples(st.just("bytes"), _vendor_specific),
)
_attributes = st.lists(
    st.one_of(_single.map(lambda a: [a]), st.sampled_from(USERS).flatmap(_login)),
    max_size=6,
).map(lambda groups: [attribute for group in groups for attribute in group])

_damage = st.one_of(
    st.just(("none", 0)),
    st.just(("none", 0)),
    st.tuples(
        st.sampled_from(
            ["truncate", "pad", "length+", "length-", "flip", "attribute-length", "overrun", "huge"]
        ),
        st.integers(0, 1000),
    ),
)


def _plans(codes: list[int]) -> st.SearchStrategy[Plan]:
    return st.builds(
        Plan,
        code=st.sampled_from(codes),
        identifier=st.integers(0, 255),
        authenticator=st.binary(min_size=16, max_size=16),
        attributes=_attributes,
        ma=st.sampled_from(["none", "first", "first", "last", "twice", "short"]),
        ma_secret=st.sampled_from([SECRET, SECRET, OTHER_SECRET]),
        acct_secret=st.sampled_from([SECRET, SECRET, OTHER_SECRET, None]),
        damage=_damage,
    )


_SETTINGS = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_SETTINGS
@given(plan=_plans([rp.AccessRequest, rp.AccessRequest, rp.StatusServer, rp.AccessAccept]))
def test_access_requests_read_as_pyrad_reads_them(plan: Plan) -> None:
    data = build(plan)
    for require in (True, False):
        assert_same(data, "auth", require_message_authenticator=require)


@_SETTINGS
@given(plan=_plans([rp.AccountingRequest, rp.AccountingRequest, rp.AccessRequest]))
def test_accounting_requests_read_as_pyrad_reads_them(plan: Plan) -> None:
    assert_same(build(plan), "acct")


def _plan(code: int, attributes: list[tuple[str, Any]], **changes: Any) -> Plan:
    base: dict[str, Any] = {
        "code": code,
        "identifier": 7,
        "authenticator": bytes(range(16)),
        "attributes": attributes,
        "ma": "first",
        "ma_secret": SECRET,
        "acct_secret": SECRET,
        "damage": ("none", 0),
    }
    return Plan(**{**base, **changes})


def test_the_cases_that_matter_are_answered_and_read_alike() -> None:
    """Named cases (the generated ones may miss some): each answered (or dropped) as stated,
    with the same values as pyrad's."""
    session = str(uuid.UUID("12345678-1234-4234-8234-123456789abc")).encode()
    user = ("raw", (1, b"B000001"))
    device = ("raw", (31, b"aa-bb-cc"))
    proxies = [("raw", (33, b"first proxy")), ("raw", (33, b"\x00second"))]
    pap = ("pap", ("b000001 ", SECRET))
    long_pap = ("pap", ("B000001" + " " * 60, SECRET))  # 67 octets: five blocks
    accounting = [
        ("raw", (40, (3).to_bytes(4, "big"))),
        ("raw", (44, b"acct-1")),
        ("raw", (46, (90).to_bytes(4, "big"))),
        ("raw", (41, (5).to_bytes(4, "big"))),
        ("raw", (55, (1_800_000_000).to_bytes(4, "big"))),
        ("raw", (25, b"not a uuid")),
        ("raw", (25, session)),
        user,
        device,
    ]
    cases: list[tuple[str, Plan, bool]] = [
        ("auth", _plan(1, [user, pap, device, *proxies]), True),
        ("auth", _plan(1, [user, long_pap, device]), True),
        ("auth", _plan(1, [user, pap], ma="none"), False),  # required
        ("auth", _plan(1, [user, pap], ma_secret=OTHER_SECRET), False),
        ("auth", _plan(1, [user, pap], ma="last"), True),
        ("auth", _plan(1, [user, pap], ma="twice"), True),  # the first one counts
        ("auth", _plan(1, [user, pap], ma="short"), False),
        ("auth", _plan(1, [user, ("chap", (9, "B000001"))]), True),
        ("auth", _plan(1, [user, ("challenge", b"c" * 16), ("chap", (9, "B000001"))]), True),
        ("auth", _plan(1, [user, ("raw", (2, b""))]), True),  # empty password
        ("auth", _plan(1, [user, ("raw", (2, b"x" * 17))]), True),  # not 16-octet blocks
        ("auth", _plan(12, []), True),  # Status-Server
        ("auth", _plan(12, [], ma="none"), False),
        ("auth", _plan(1, [user, pap], damage=("pad", 10)), True),  # padding ignored
        ("auth", _plan(1, [user, pap], damage=("truncate", 0)), False),
        ("auth", _plan(1, [user, pap], damage=("length+", 0)), False),
        ("auth", _plan(1, [user, pap], damage=("attribute-length", 0)), False),
        ("auth", _plan(1, [user, pap], damage=("attribute-length", 1)), False),
        ("auth", _plan(1, [user, pap], damage=("huge", 0)), False),
        ("acct", _plan(4, accounting), True),
        ("acct", _plan(4, [*accounting, *proxies], ma="none"), True),
        ("acct", _plan(4, accounting, acct_secret=OTHER_SECRET), False),
        ("acct", _plan(4, accounting, ma_secret=OTHER_SECRET), False),
        ("acct", _plan(4, accounting, acct_secret=None), False),
    ]
    for port, plan, answered in cases:
        assert assert_same(build(plan), port) is answered, plan


def test_an_attribute_past_the_length_drops_the_packet_where_pyrad_truncates_it() -> None:
    """The one verdict that differs: pyrad keeps the last attribute's octets up to the Length
    (here a User-Name cut short, signed by whoever sent it); keyledger drops the packet."""
    body = _attribute(1, b"B000001")
    overrun = bytes((31, 40)) + b"aa-bb"  # says 40 octets, 7 are there
    head = bytes((1, 3)) + (20 + 18 + len(body) + len(overrun)).to_bytes(2, "big")
    authenticator = bytes(16)
    zero_ma = _attribute(80, bytes(16))
    signature = hmac.digest(SECRET, head + authenticator + zero_ma + body + overrun, "md5")
    data = head + authenticator + _attribute(80, signature) + body + overrun
    theirs = pyrad_reading(data, "auth", True)
    assert theirs is not None
    assert theirs[1]["Calling-Station-Id"] == "aa-bb"
    assert our_reading(data, "auth", True) is None


@given(st.binary(max_size=80))
@example(b"\x01\x01\x00\x14" + bytes(16))  # a bare header: no attributes
@example(b"\x01\x01\x00\x15" + bytes(17))  # one octet of attribute
def test_random_datagrams_read_as_pyrad_reads_them(data: bytes) -> None:
    for port in ("auth", "acct"):
        assert_same(data, port, require_message_authenticator=False)


def test_the_dictionary_has_nothing_the_decoder_reads_differently() -> None:
    """``Request.get`` decodes by the dictionary's types and VALUE names; tags, salt encryption
    and TLVs (which pyrad decodes otherwise) are not in keyledger's dictionary."""
    for attribute in packets.dictionary().attributes.values():
        assert not attribute.has_tag
        assert not attribute.encrypt
        assert attribute.type != "tlv"
