"""What the RADIUS tests share: `keyledger serve --workers 2` with RADIUS on ports of its own,
Debian's `radclient`, a small pyrad client that can speak from other loopback addresses, and a
NAS stand-in that checks Disconnect-Requests and answers them."""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pyrad import packet as rp

from keyledger.radius.packets import dictionary
from tests.support import need

SECRET = "testing123"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Answer:
    """What radclient printed: the reply's kind and attributes (None: no reply)."""

    kind: str | None
    attributes: dict[str, str]
    output: str


def radclient(port: int, kind: str, attributes: str, secret: str = SECRET) -> Answer:
    """Send one request with Debian's radclient (``kind``: auth, acct) and parse its answer."""
    need(shutil.which("radclient"), "radclient (Debian's freeradius-utils) is not installed")
    done = subprocess.run(
        ["radclient", "-x", "-t", "3", "-r", "1", f"127.0.0.1:{port}", kind, secret],
        input=attributes,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    output = done.stdout + done.stderr
    found = re.search(r"^Received (\S+) Id", output, re.MULTILINE)
    if found is None:
        return Answer(None, {}, output)
    reply = output[found.end() :]
    attrs = dict(re.findall(r"^\s+(\S+) = (.*)$", reply, re.MULTILINE))
    return Answer(found.group(1), {k: v.strip('"') for k, v in attrs.items()}, output)


def class_of(answer: Answer) -> str:
    """The Class of an Access-Accept as radclient input (hex)."""
    return answer.attributes["Class"]


def session_id_of(answer: Answer) -> str:
    return bytes.fromhex(class_of(answer).removeprefix("0x")).decode("ascii")


def access_request(
    *,
    user: str,
    password: str | None = None,
    device: str = "",
    secret: str = SECRET,
    message_authenticator: bool = True,
) -> Any:
    request = rp.AuthPacket(code=rp.AccessRequest, secret=secret.encode(), dict=dictionary())
    request["User-Name"] = user
    request["User-Password"] = request.PwCrypt(user if password is None else password)
    if device:
        request["Calling-Station-Id"] = device
    if message_authenticator:
        request.add_message_authenticator()
    return request


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def ipv6_loopback() -> bool:
    """Whether this machine can bind ::1 (IPv6 loopback)."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Client:
    """A UDP socket on a loopback address of its choosing, speaking RADIUS to one port (of
    127.0.0.1; of ::1 when ``source`` is an IPv6 address)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family_of(source), socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.sock.settimeout(3)
        self.port = port
        self.server = "::1" if ":" in source else "127.0.0.1"

    def exchange(self, raw: bytes, timeout: float = 3.0) -> bytes | None:
        self.sock.settimeout(timeout)
        self.sock.sendto(raw, (self.server, self.port))
        try:
            return self.sock.recv(4096)
        except TimeoutError:
            return None

    def close(self) -> None:
        self.sock.close()


def reply_of(request: Any, raw: bytes | None) -> Any:
    """The decoded reply, checked against the request (authenticator, Message-Authenticator)."""
    assert raw is not None, "no answer"
    reply = rp.AuthPacket(packet=raw, secret=request.secret, dict=dictionary())
    assert request.VerifyReply(reply, raw, enforce_ma=True)
    return reply


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


@dataclass
class NasStandIn:
    """A NAS's CoA port on ``host``: checks each Disconnect-Request's authenticator and
    Message-Authenticator, records it (with its Event-Timestamp and the time it arrived), and
    answers ACK, NAK, or nothing (``mode``)."""

    secret: bytes = SECRET.encode()
    mode: str = "ack"
    host: str = "127.0.0.1"
    received: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket(family_of(self.host), socket.SOCK_DGRAM)
        self.sock.bind((self.host, 0))
        self.sock.settimeout(0.2)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            request = rp.CoAPacket(packet=data, secret=self.secret, dict=dictionary())
            signed = bool(request.VerifyCoARequest()) and bool(
                request.message_authenticator and request.verify_message_authenticator()
            )
            octets = {number: request.get(number, [None])[0] for number in (31, 44)}
            self.received.append(
                {
                    "code": request.code,
                    "signed": signed,
                    "User-Name": request.get("User-Name", [None])[0],
                    "Acct-Session-Id": _text(octets[44]),
                    "Calling-Station-Id": _text(octets[31]),
                    "octets": octets,  # as sent (raw octets of ids that are not text)
                    "Event-Timestamp": request.get("Event-Timestamp", [None])[0],
                    "arrived": time.time(),
                    "from": addr[0],
                }
            )
            if self.mode == "silent" or not signed:
                continue
            reply = request.CreateReply()
            if self.mode == "nak":
                reply.code = rp.DisconnectNAK
                reply["Error-Cause"] = 503  # Session Context Not Found
            self.sock.sendto(reply.ReplyPacket(), addr)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
