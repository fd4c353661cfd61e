"""The packet layer and the duplicate cache, in process (no server)."""

from __future__ import annotations

import hashlib
import time
import uuid
from datetime import UTC, datetime, timedelta

from pyrad import packet as rp

from keyledger.radius import packets
from keyledger.radius.server import DuplicateCache, plain_host
from tests.radius.support import access_request

SECRET = b"testing123"


def _received(request: rp.AuthPacket) -> rp.AuthPacket:
    return packets.decode_access_request(request.RequestPacket(), SECRET)


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
    request = _received(access_request(user="x"))
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
    assert request.VerifyReply(reply, raw, enforce_ma=True)
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
