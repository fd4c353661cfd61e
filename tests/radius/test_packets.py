"""The packet layer and the duplicate cache, in process (no server)."""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pyrad import packet as rp

from keyledger.radius import packets
from keyledger.radius.server import DuplicateCache, plain_host
from tests.radius.support import access_request

SECRET = b"testing123"


def _received(request: rp.AuthPacket) -> packets.Request:
    return packets.decode_access_request(request.RequestPacket(), SECRET)


def _pyrad_received(request: Any) -> Any:
    """The same request as pyrad decodes it (the reference of keyledger's decoder)."""
    factory = rp.AcctPacket if request.code == rp.AccountingRequest else rp.AuthPacket
    return factory(packet=request.RequestPacket(), secret=SECRET, dict=packets.dictionary())


def _chap(code: bytes, challenge: bytes) -> bytes:
    """A CHAP-Password (RFC 2865 section 5.3): identifier, MD5(identifier, secret, challenge)."""
    return b"\x07" + hashlib.md5(b"\x07" + code + challenge).digest()  # noqa: S324 - CHAP is MD5


def test_a_code_is_proven_by_its_pap_password_or_chap_response() -> None:
    assert packets.proven_code(_received(access_request(user="Lobby 42"))) == "Lobby 42"
    # The code's normalisation (case, surrounding spaces) applies to the password too.
    assert packets.proven_code(_received(access_request(user="LOBBY42", password=" lobby42 ")))
    assert packets.proven_code(_received(access_request(user="LOBBY42", password="LOBBY43"))) == ""
    chap = rp.AuthPacket(code=rp.AccessRequest, secret=SECRET, dict=packets.dictionary())
    chap["User-Name"] = "00001"
    chap.authenticator = chap.CreateAuthenticator()
    chap["CHAP-Password"] = _chap(b"00001", chap.authenticator)
    # Without a Message-Authenticator a CHAP response proves nothing of the shared secret.
    assert packets.proven_code(_received(chap)) == ""
    chap.add_message_authenticator()
    assert packets.proven_code(_received(chap)) == "00001"
    chap["CHAP-Password"] = _chap(b"00002", chap.authenticator)
    assert packets.proven_code(_received(chap)) == ""
    bare = rp.AuthPacket(code=rp.AccessRequest, secret=SECRET, dict=packets.dictionary())
    bare["User-Name"] = "00001"
    assert packets.proven_code(_received(bare)) == ""


def test_message_authenticator_checks() -> None:
    signed = _received(access_request(user="x"))
    assert packets.authentic_access_request(signed, require_message_authenticator=True)
    unsigned = _received(access_request(user="x", message_authenticator=False))
    assert not packets.authentic_access_request(unsigned, require_message_authenticator=True)
    assert packets.authentic_access_request(unsigned, require_message_authenticator=False)
    other = access_request(user="x", secret="another secret")
    wrong = packets.decode_access_request(other.RequestPacket(), SECRET)
    assert not packets.authentic_access_request(wrong, require_message_authenticator=False)


def test_an_accept_never_runs_past_valid_to() -> None:
    sent = access_request(user="x")
    request = _received(sent)
    now = datetime(2030, 1, 1, 12, tzinfo=UTC)
    session = uuid.uuid4()
    raw = packets.accept(
        request,
        session_uid=session,
        seconds_left=7200,
        valid_to=now + timedelta(minutes=10),
        now=now,
        interim_seconds=60,
        idle_seconds=600,
    )
    reply = rp.AuthPacket(packet=raw, secret=SECRET, dict=packets.dictionary())
    assert sent.VerifyReply(reply, raw, enforce_ma=True)
    assert reply["Session-Timeout"] == [600]
    assert reply["WISPr-Session-Terminate-Time"] == ["2030-01-01T12:10:00+00:00"]
    assert packets.session_class(reply) == session


def test_session_timeout_is_capped_at_what_the_attribute_holds() -> None:
    """Over 2**32 - 1 seconds left (a voucher of 100 million minutes) the Accept still encodes."""
    request = _received(access_request(user="x"))
    raw = packets.accept(
        request,
        session_uid=uuid.uuid4(),
        seconds_left=100_000_000 * 60,
        valid_to=None,
        now=datetime(2030, 1, 1, tzinfo=UTC),
        interim_seconds=60,
        idle_seconds=600,
    )
    reply = rp.AuthPacket(packet=raw, secret=SECRET, dict=packets.dictionary())
    assert reply["Session-Timeout"] == [2**32 - 1]


def test_the_duplicate_cache_answers_within_its_time_then_forgets() -> None:
    cache = DuplicateCache(0.2)
    key = ("127.0.0.1", 5000, 1, 7, b"a" * 16)
    assert cache.lookup(key) == (False, None)
    assert cache.lookup(key) == (True, None)  # in flight: dropped
    cache.remember(key, b"answer")
    assert cache.lookup(key) == (True, b"answer")
    time.sleep(0.3)
    assert cache.lookup(key) == (False, None)
    cache.forget(key)
    assert cache.lookup(key) == (False, None)
    assert DuplicateCache(0).lookup(key) == (False, None)


def test_ipv4_mapped_addresses_are_plain_ipv4() -> None:
    assert plain_host("::ffff:192.0.2.1") == "192.0.2.1"
    assert plain_host("2001:db8::1") == "2001:db8::1"


def test_a_disconnect_request_carries_its_sending_time_signed() -> None:
    sent_at = datetime(2026, 12, 1, 20, 0, 5, 900_000, tzinfo=UTC)
    request = packets.disconnect_request(
        secret=SECRET,
        identifier=7,
        user_name="00001",
        acct_session_id="acct-1",
        device_id="aa:bb",
        now=sent_at,
    )
    raw = bytes(request.RequestPacket())
    received = rp.CoAPacket(packet=raw, secret=SECRET, dict=packets.dictionary())
    assert received.code == packets.DISCONNECT_REQUEST
    assert received["Event-Timestamp"] == [int(sent_at.timestamp())]
    assert received.VerifyCoARequest()
    assert received.message_authenticator and received.verify_message_authenticator()
    # The timestamp is covered by both: changed in transit, neither verifies.
    at = raw.index(bytes([55, 6]))
    forged = raw[: at + 2] + (int(sent_at.timestamp()) + 60).to_bytes(4, "big") + raw[at + 6 :]
    tampered = rp.CoAPacket(packet=forged, secret=SECRET, dict=packets.dictionary())
    assert not tampered.VerifyCoARequest()
    assert not tampered.verify_message_authenticator()


# --- replies: packets.py encodes them itself; the bytes must be pyrad's -------------------------


def _pyrad_accept(request: Any, *, session_uid: uuid.UUID, timeout: int, valid_to: Any) -> bytes:
    """The Access-Accept as pyrad builds it (what packets.accept did before issue 14's speed-up)."""
    reply = request.CreateReply()
    reply.code = rp.AccessAccept
    reply["Session-Timeout"] = timeout
    reply["Acct-Interim-Interval"] = 300
    reply["Idle-Timeout"] = 600
    reply["Class"] = str(session_uid).encode("ascii")
    if valid_to is not None:
        reply["WISPr-Session-Terminate-Time"] = valid_to.isoformat()
    return bytes(reply.ReplyPacket())


def _with_proxy_states(request: Any, states: list[bytes]) -> Any:
    for state in states:
        request.AddAttribute("Proxy-State", state)
    return request


def test_replies_are_the_bytes_pyrad_encodes() -> None:
    now = datetime(2026, 12, 1, 20, 0, 0, 250_000, tzinfo=UTC)
    session_uid = uuid.UUID("12345678-1234-4234-8234-123456789abc")
    checked = 0
    for states in ([], [b"\x01"], [b"first proxy", b"second \x00 proxy"]):
        for signed in (True, False):
            for user in ("B000001", "Lobby ünï 42"):
                sent = _with_proxy_states(
                    access_request(user=user, device="aa-bb", message_authenticator=signed),
                    states,
                )
                request = _received(sent)
                theirs_request = _pyrad_received(sent)
                for seconds_left, valid_to in [
                    (5_400, None),
                    (5_400, now + timedelta(seconds=90)),
                    (2**40, now + timedelta(days=9_000)),
                    (1, now - timedelta(seconds=5)),
                ]:
                    mine = packets.accept(
                        request,
                        session_uid=session_uid,
                        seconds_left=seconds_left,
                        valid_to=valid_to,
                        now=now,
                        interim_seconds=300,
                        idle_seconds=600,
                    )
                    timeout = seconds_left
                    if valid_to is not None:
                        timeout = min(timeout, max(1, math.ceil((valid_to - now).total_seconds())))
                    theirs = _pyrad_accept(
                        theirs_request,
                        session_uid=session_uid,
                        timeout=min(max(1, timeout), 2**32 - 1),
                        valid_to=None
                        if valid_to is None
                        else valid_to.astimezone(UTC).replace(microsecond=0),
                    )
                    assert mine == theirs
                    assert sent.VerifyReply(packets.decode_reply(sent, mine), mine)
                    checked += 1
                for reason in ("UnknownCredential", "TooManyDevices", "Throttled"):
                    reply = theirs_request.CreateReply()
                    reply.code = rp.AccessReject
                    reply["Reply-Message"] = reason
                    assert packets.reject(request, reason=reason) == bytes(reply.ReplyPacket())
                    checked += 1
        status = rp.AuthPacket(code=rp.StatusServer, secret=SECRET, dict=packets.dictionary())
        status.add_message_authenticator()
        _with_proxy_states(status, states)
        reply = _pyrad_received(status).CreateReply()
        reply.code = rp.AccessAccept
        assert packets.status_accept(_received(status)) == bytes(reply.ReplyPacket())
        accounting = rp.AcctPacket(
            code=rp.AccountingRequest, secret=SECRET, dict=packets.dictionary()
        )
        accounting["Acct-Status-Type"] = "Interim-Update"
        accounting["Acct-Session-Id"] = "acct-1"
        _with_proxy_states(accounting, states)
        received = packets.decode_accounting_request(accounting.RequestPacket(), SECRET)
        expected = bytes(_pyrad_received(accounting).CreateReply().ReplyPacket())
        assert packets.accounting_response(received) == expected
        checked += 2
    assert checked == 3 * (2 * 2 * (4 + 3) + 2)


def test_the_attributes_read_on_every_request_are_what_pyrads_get_returns() -> None:
    """packets.first reads User-Name, User-Password, CHAP-Password, Calling-Station-Id and
    Acct-Session-Id raw; the values (and None when absent) must be what pyrad's ``get`` gives
    for the same packet, decoded by keyledger and by pyrad."""

    def pyrad_first(packet: Any, name: str) -> Any:
        try:
            values = packet.get(name)
        except (UnicodeDecodeError, ValueError, KeyError, TypeError):
            return None
        return values[0] if values else None

    names = ["User-Name", "User-Password", "CHAP-Password", "Calling-Station-Id", "Acct-Session-Id"]
    checked = 0
    for raw_values in ([], [b"plain"], [b"\xff\xfe not utf-8"], [b"f\xc3\xbcr", b"second"], [b""]):
        for factory in (rp.AuthPacket, rp.AcctPacket):
            sent = factory(secret=SECRET, dict=packets.dictionary())
            sent.code = rp.AccessRequest if factory is rp.AuthPacket else rp.AccountingRequest
            for code in (1, 2, 3, 31, 44):
                if raw_values:
                    sent[code] = list(raw_values)  # raw values, as a NAS may send anything
            raw = sent.RequestPacket()
            received = packets.decode_request(raw, SECRET)
            theirs_packet = factory(packet=raw, secret=SECRET, dict=packets.dictionary())
            for name in names:
                mine, theirs = packets.first(received, name), pyrad_first(theirs_packet, name)
                assert (type(mine), mine) == (type(theirs), theirs)
                assert packets.first(theirs_packet, name) == theirs
                assert packets.text(received, name) == (theirs if isinstance(theirs, str) else "")
                checked += 1
    assert checked == 5 * 2 * 5
