"""An answer given before the request's body has arrived (a 413 decided on Content-Length, a
malformed request) reaches the client whole, in its dialect's shape, and the connection is then
closed cleanly: the rest of the body is read and dropped (no reset, no 431 read as the answer to
a next request), for a bounded time only. The real server (``LiveServer``, the production
protocol ``keyledger.web.serving:GuardedHttpToolsProtocol``), raw sockets and httpx.
docs/architecture.md, "Slow clients and a hung Redis"."""

from __future__ import annotations

import base64
import json
import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from keyledger.kit.settings import get_settings
from tests.support import (
    MEWS_PATH,
    DatabaseFactory,
    Deployment,
    deploy,
    make_nexudus_tenant,
    make_tenant,
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def read_answer(sock: socket.socket) -> Answer:
    """One HTTP answer with a Content-Length, read from ``sock`` (nothing after it)."""
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {received!r}"
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        assert chunk, f"closed within the answer's body: {received!r}"
        body += chunk
    assert len(body) == length, "more than the answer before the client's next request"
    return Answer(int(status_line.split()[1]), headers, body)


def rest_of_stream(sock: socket.socket) -> bytes:
    """What the server sends until it closes (a reset is a failure)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def mews_shape(body: dict[str, Any], _: int) -> None:
    assert set(body) == {"Message", "RequestId", "Details"} and body["Message"]


def api_shape(body: dict[str, Any], status: int) -> None:
    assert set(body) == {"Status", "Error", "Message", "RequestId"} and body["Status"] == status


def nexudus_shape(body: dict[str, Any], status: int) -> None:
    assert body["WasSuccessful"] is False and body["Status"] == status and body["Message"]


@dataclass(frozen=True)
class Target:
    name: str
    method: str
    path: str
    shape: Callable[[dict[str, Any], int], None]


TARGETS = [
    Target("mews delete", "POST", f"{MEWS_PATH}/delete", mews_shape),
    Target("v1 hotspot session", "POST", "/api/v1/hotspot/sessions", api_shape),
    Target("nexudus create", "POST", "/api/spaces/accesstokens", nexudus_shape),
]


@pytest.fixture(scope="module")
def deployment(sqlite_databases: DatabaseFactory) -> Iterator[Deployment]:
    """A server of its own (pure HTTP-layer behaviour: SQLite only)."""
    made = deploy(sqlite_databases.new_url())
    yield made
    made.close()


def credentials_for(deployment: Deployment, target: Target) -> dict[str, str]:
    if target.name.startswith("mews"):
        return {}
    if target.name.startswith("v1"):
        return {"Authorization": f"Bearer {make_tenant(deployment).access_token}"}
    basic = base64.b64encode(":".join(make_nexudus_tenant(deployment).auth).encode()).decode()
    return {"Authorization": f"Basic {basic}"}


def oversized(deployment: Deployment, target: Target) -> tuple[bytes, bytes]:
    """The head and the body of a JSON request larger than ``max_body_bytes``."""
    body = json.dumps({"Padding": "x" * (deployment.settings.max_body_bytes + 1000)}).encode()
    headers = {
        "Host": "keyledger",
        "Content-Type": "application/json",
        "Content-Length": str(len(body)),
        **credentials_for(deployment, target),
    }
    lines = [f"{target.method} {target.path} HTTP/1.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode(), body


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_the_rest_of_an_answered_body_is_read_and_the_connection_closed_cleanly(
    deployment: Deployment, target: Target
) -> None:
    """Headers and the first KiB of a body over the limit: the 413 comes at once, in the
    dialect's shape with ``Connection: close``; the client then sends the other 5 MiB, which
    the server reads (no reset), and the connection ends with nothing more (before: the rest of
    the body was counted as the next request's headers and answered 431, empty, then reset)."""
    head, body = oversized(deployment, target)
    with socket.create_connection(("127.0.0.1", deployment.server.port), timeout=30) as sock:
        sock.sendall(head + body[:1024])
        answer = read_answer(sock)
        assert answer.status == 413, answer
        target.shape(answer.json(), 413)
        sock.sendall(body[1024:])  # read by the server, not reset
        sock.shutdown(socket.SHUT_WR)
        assert rest_of_stream(sock) == b""
    assert answer.headers["connection"] == "close"


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_a_body_sent_whole_before_the_answer_is_read_still_gets_it(
    deployment: Deployment, target: Target
) -> None:
    """A client that sends all of a body twice the limit before it reads, with a small receive
    buffer: every byte is taken (no reset) and the whole 413 is read, then the end of the
    stream."""
    head, body = oversized(deployment, target)
    body += body
    with socket.create_connection(("127.0.0.1", deployment.server.port), timeout=30) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(head + body)
        answer = read_answer(sock)
        assert answer.status == 413, answer
        target.shape(answer.json(), 413)
        sock.shutdown(socket.SHUT_WR)
        assert rest_of_stream(sock) == b""


def test_a_kept_alive_client_gets_each_answer_in_its_shape(deployment: Deployment) -> None:
    """The CI failure (test_hostile_input): one httpx client sends an oversized body, then a
    broken one, five times per dialect. Each oversized body is a 413 that closes its
    connection; each next request, on a new connection, a 400 in its shape (before: now and
    then a 431 with an empty body, the server's answer to the rest of the oversized body)."""
    for target in TARGETS:
        _, body = oversized(deployment, target)
        headers = {"Content-Type": "application/json", **credentials_for(deployment, target)}
        with httpx.Client(base_url=deployment.server.url, timeout=30) as http:
            for _ in range(5):
                big = http.request(target.method, target.path, content=body, headers=headers)
                assert big.status_code == 413
                target.shape(big.json(), 413)
                broken = http.request(target.method, target.path, content=b"[", headers=headers)
                assert broken.status_code == 400, (target.name, broken.status_code, broken.text)
                target.shape(broken.json(), 400)
                assert big.headers["connection"] == "close"


def test_a_malformed_request_with_more_to_come_gets_its_400_whole(
    deployment: Deployment,
) -> None:
    """A Content-Length httptools cannot parse, followed by 1 MiB: the JSON 400 in the dialect's
    shape, every byte taken (no reset), then the end of the stream."""
    with socket.create_connection(("127.0.0.1", deployment.server.port), timeout=30) as sock:
        sock.sendall(b"POST /api/v1/resources HTTP/1.1\r\nHost: x\r\ncontent-length: 1x\r\n\r\n")
        sock.sendall(b"x" * 1024 * 1024)
        answer = read_answer(sock)
        assert answer.status == 400 and answer.headers["connection"] == "close"
        api_shape(answer.json(), 400)
        sock.shutdown(socket.SHUT_WR)
        assert rest_of_stream(sock) == b""


#: The body deadline of the server below (seconds): after an answer the connection lingers at
#: most this long. Its backstop (the body deadline plus 5 s) is past GIVE_UP for a client that
#: trickles or sends nothing, so closing before GIVE_UP is the lingering bound's doing.
BODY_SECONDS = 1
GIVE_UP = 5.0


@pytest.fixture(scope="module")
def quick(sqlite_databases: DatabaseFactory) -> Iterator[Deployment]:
    """A server whose connections read KEYLEDGER_BODY_READ_SECONDS=1 (the protocol takes the
    process's settings)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KEYLEDGER_BODY_READ_SECONDS", str(BODY_SECONDS))
        get_settings.cache_clear()
        try:
            made = deploy(sqlite_databases.new_url(), body_read_seconds=BODY_SECONDS)
            yield made
            made.close()
        finally:
            patch.undo()
            get_settings.cache_clear()


def hold_after_answer(port: int, head: bytes, body: bytes, how: str) -> tuple[Answer, bool]:
    """Send the head and a KiB of the body, read the answer, then keep the connection busy
    (``trickle``: a byte every 0.2 s; ``flood``: as fast as the server takes them; ``silent``:
    nothing) until the server closes it or ``GIVE_UP`` seconds after the answer: the answer,
    and whether the server closed it."""
    with socket.create_connection(("127.0.0.1", port), timeout=GIVE_UP) as sock:
        sock.sendall(head + body[:1024])
        answer = read_answer(sock)
        sock.setblocking(False)
        until = time.monotonic() + GIVE_UP
        sent = 1024
        while time.monotonic() < until:
            want_write = [sock] if how == "flood" else []
            readable, writable, _ = select.select([sock], want_write, [], 0.2)
            try:
                if readable and not sock.recv(65536):
                    return answer, True
                if writable:
                    sent += sock.send(body[sent % len(body) :][:65536])
                elif how == "trickle":
                    sock.send(b"x")
            except (ConnectionResetError, BrokenPipeError):
                return answer, True
        return answer, False


@pytest.mark.parametrize("how", ["trickle", "flood", "silent"])
def test_lingering_after_an_answer_is_bounded(quick: Deployment, how: str) -> None:
    """After an early 413 the server reads and drops the rest for at most the body deadline:
    a client that trickles bytes, floods them or sends nothing and never closes is cut off
    within ``GIVE_UP`` of its answer (the answer itself was whole)."""
    target = TARGETS[0]
    head, body = oversized(quick, target)
    answer, closed = hold_after_answer(quick.server.port, head, body, how)
    assert answer.status == 413
    target.shape(answer.json(), 413)
    assert closed, f"{how}: still open {GIVE_UP} s after the answer"
