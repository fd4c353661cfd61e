"""uvicorn's HTTP protocol (httptools) with the receipt deadlines uvicorn lacks.

uvicorn bounds only the idle time between requests (``timeout_keep_alive``), and any byte
received cancels even that: a client that sends its headers, or a body the application does not
read, one byte at a time holds the connection for ever (slowloris). The application bounds the
body it reads itself (``read_body``: ``body_read_seconds``, a 408 in the dialect's shape), but
nothing at the ASGI level sees a request before its headers are complete. So each connection
here carries two timers (docs/architecture.md, "Slow clients and a hung Redis"):

- headers: from the connection's start, or from the end of its previous response, the next
  request's headers must be complete within ``header_read_seconds``, else the connection is
  closed (no answer: there is no request yet to answer in any dialect);
- body: from the end of the headers, the whole request must be received within
  ``body_read_seconds`` plus a grace period plus one second per ``body_min_bytes_per_second``
  received, else the connection is closed. The application
  answers a slow body it reads at ``body_read_seconds``; this is the backstop for a body it does
  not read (or reads no more, after answering).

The headers are also bounded in size (``max_header_bytes``; httptools, unlike h11, has no such
bound, and uvicorn's ``h11_max_incomplete_event_size`` applies to h11 only): beyond, a plain 431
(no request exists yet to answer in a dialect's shape) and the connection closed.

An answer sent before its request's body has been received (a 413 decided on Content-Length, a
401 or 408, or any answer the application gives without reading the body) says
``Connection: close``, and the connection is then closed *lingering*: the write side is shut
(FIN after the answer), and whatever the client still sends is read and dropped until it closes
its side, for at most ``body_read_seconds`` after the answer and never past the body deadline.
Closing at once with unread bytes makes the kernel reset the connection, which may cost a client
still sending its body the answer it has not read yet; keeping the connection alive instead let
the rest of the body reach the header bound of a "next request" (a 431 with an empty body, read
by the client as the answer to its next request). The 431 and the malformed-request 400 close
the same way.

And a worker holding more than ``max_connections`` connections closes connections that wait for
a request's headers (idle keep-alive ones and new silent ones) or linger after their answer,
longest waiting first, to make room for a new one; when none waits the new connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from asyncio import TimerHandle
from typing import Any, cast

import structlog
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from keyledger.kit.settings import get_settings
from keyledger.web.middleware import REQUEST_ID_HEADER
from keyledger.web.nexudus.errors import failure_body

log = structlog.get_logger("keyledger.web.serving")

#: Past ``body_read_seconds``, how long the application gets to send its 408 before the
#: connection itself is closed.
BODY_GRACE_SECONDS = 5.0

HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
    b"content-length: 0\r\nconnection: close\r\n\r\n"
)


#: What a request httptools cannot parse is told (a malformed header line, a bad Content-Length).
MALFORMED = "The request is not valid HTTP/1.1 (a malformed request line or header)."


def malformed_body(path: str, request_id: str) -> dict[str, Any]:
    """The 400 of a request httptools cannot parse, in the shape of the dialect its path names
    (as far as the path was read; keyledger's own API's otherwise)."""
    if path.startswith("/api/connector/"):
        return {"Message": f"Invalid request: {MALFORMED}", "RequestId": request_id}
    if path.startswith(("/api/spaces/", "/api/token")):
        return failure_body(400, MALFORMED, [])
    return {"Status": 400, "Error": "InvalidInput", "Message": MALFORMED, "RequestId": request_id}


class _AnswerTransport:
    """The transport as a request's ``RequestResponseCycle`` sees it: the same, except that the
    close uvicorn asks for after a ``Connection: close`` answer (or after a failed one) is the
    protocol's, which lingers while the request's body is still arriving."""

    def __init__(self, protocol: GuardedHttpToolsProtocol) -> None:
        self._protocol = protocol
        self._transport = protocol.transport

    def write(self, data: bytes) -> None:
        # Lingering, the write side is shut: an answer still being written (a pipelined request
        # when a later one could not be parsed) is dropped, as on a closed connection.
        if not self._protocol.lingering:
            self._transport.write(data)

    def is_closing(self) -> bool:
        return self._transport.is_closing() or self._protocol.lingering

    def close(self) -> None:
        self._protocol.close_after_answer()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self._header_seconds = settings.header_read_seconds
        self._body_seconds = settings.body_read_seconds + BODY_GRACE_SECONDS
        self._body_rate = settings.body_min_bytes_per_second
        self._body_started = 0.0
        self._body_received = 0
        self._max_connections = settings.max_connections
        self._max_header_bytes = settings.max_header_bytes
        self._header_bytes = 0
        self._header_timer: TimerHandle | None = None
        self._body_timer: TimerHandle | None = None
        self._awaiting_headers = False
        self._waiting_since = self.loop.time()
        # The current request's body is still arriving (headers complete, message not).
        self._body_pending = False
        # Whether the current request's connection stays open after its answer, once its body
        # has been received: uvicorn's decision, held back until then.
        self._keep_alive_after_body = False
        self._linger_seconds = settings.body_read_seconds
        self._linger_timer: TimerHandle | None = None
        self.lingering = False

    # The header deadline: armed whenever the connection waits for a request's headers.
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self._make_room():
            log.warning("connection_refused", reason="too_many_connections")
            transport.close()
            return
        self._await_headers()

    def data_received(self, data: bytes) -> None:
        if self.lingering:  # answered and closing: the rest is read only to be dropped
            return
        super().data_received(data)
        if self._body_timer is not None:  # a body arriving: its deadline moves with its size
            self._body_received += len(data)
            self._arm_body_timer()
        # Still waiting for the end of the headers after this chunk: all of it was headers.
        if self._awaiting_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self._max_header_bytes:
                log.info("connection_closed", reason="headers_too_large")
                self.transport.write(HEADERS_TOO_LARGE)
                self._linger()

    def send_400_response(self, msg: str) -> None:
        """uvicorn answers a request httptools cannot parse in text/plain; every dialect's client
        expects JSON in its own shape, with a Request-Id (README, "Errors")."""
        request_id = str(uuid.uuid4())
        path = getattr(self, "url", b"").split(b"?", 1)[0].decode("latin-1")
        content = json.dumps(malformed_body(path, request_id)).encode("utf-8")
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head.append(name + b": " + value + b"\r\n")
        head += [
            b"content-type: application/json\r\n",
            REQUEST_ID_HEADER + b": " + request_id.encode("ascii") + b"\r\n",
            b"content-length: " + str(len(content)).encode("ascii") + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + content)
        self._linger()

    def on_headers_complete(self) -> None:
        self._awaiting_headers = False
        self._cancel_header_timer()
        self._body_started = self.loop.time()
        self._body_received = 0
        self._arm_body_timer()
        previous = self.cycle
        super().on_headers_complete()
        if self.cycle is previous:  # no request cycle (a WebSocket upgrade)
            return
        # Until the body has been received, an answer says "Connection: close" and uvicorn
        # closes after it (through us: lingering); on_message_complete restores its decision
        # for an answer not yet started.
        self._body_pending = True
        self._keep_alive_after_body = self.cycle.keep_alive
        self.cycle.keep_alive = False
        self.cycle.transport = cast(asyncio.Transport, _AnswerTransport(self))

    def on_message_complete(self) -> None:
        self._cancel_body_timer()
        if self._body_pending:
            self._body_pending = False
            if not self.cycle.response_started:
                self.cycle.keep_alive = self._keep_alive_after_body
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self.lingering:  # closing: no next request on this connection
            self.server_state.total_requests += 1
            return
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._await_headers()

    def shutdown(self) -> None:
        self._keep_alive_after_body = False  # a graceful shutdown closes after the answer
        super().shutdown()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        self._cancel_body_timer()
        self._cancel_linger_timer()
        super().connection_lost(exc)

    # Closing after an answer.
    def close_after_answer(self) -> None:
        """uvicorn closes the connection after an answer: lingering if the request's body is
        still arriving, else at once."""
        if self._body_pending:
            self._linger()
        elif not self.transport.is_closing():
            self.transport.close()

    def _linger(self) -> None:
        """The answer is written: shut the write side (the client reads the answer, then end of
        stream), read and drop what still arrives until the client closes its side (the
        transport closes on its EOF), for at most ``body_read_seconds`` (and never past the body
        deadline, whose timer stays armed), then close. Closing at once with unread bytes would
        make the kernel answer the client's next segment with a reset."""
        if self.lingering or self.transport.is_closing():
            return
        self.lingering = True
        self._awaiting_headers = False
        self._cancel_header_timer()
        self._waiting_since = self.loop.time()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.flow.resume_reading()
        self._linger_timer = self.loop.call_later(self._linger_seconds, self._linger_over)

    def _linger_over(self) -> None:
        self._linger_timer = None
        if not self.transport.is_closing():
            log.info("connection_closed", reason="unread_body_after_answer")
            self.transport.close()

    def _cancel_linger_timer(self) -> None:
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def _arm_body_timer(self) -> None:
        """The body's deadline: ``body_read_seconds`` plus the grace, plus one second per
        ``body_min_bytes_per_second`` received so far (the rule ``read_body`` applies)."""
        self._cancel_body_timer()
        due = self._body_started + self._body_seconds + self._body_received / self._body_rate
        self._body_timer = self.loop.call_at(due, self._body_too_slow)

    def _await_headers(self) -> None:
        self._awaiting_headers = True
        self._waiting_since = self.loop.time()
        self._header_bytes = 0
        self._cancel_header_timer()
        self._header_timer = self.loop.call_later(self._header_seconds, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self._awaiting_headers and not self.transport.is_closing():
            log.info("connection_closed", reason="headers_too_slow")
            self.transport.close()

    def _body_too_slow(self) -> None:
        self._body_timer = None
        if not self.transport.is_closing():
            log.info("connection_closed", reason="body_too_slow")
            self.transport.close()

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _cancel_body_timer(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    # The connection cap.
    def _make_room(self) -> bool:
        """Whether this new connection may stay: at most ``max_connections`` open per worker;
        connections waiting for a request's headers (idle keep-alive ones, and new ones that
        have sent nothing yet) or lingering after their answer are closed, longest waiting
        first, to make room, so silent connections cannot lock a worker out."""
        if len(self.connections) <= self._max_connections:
            return True
        open_ = [other for other in self.connections if not other.transport.is_closing()]
        excess = len(open_) - self._max_connections
        if excess <= 0:
            return True
        idle = sorted(
            (
                other
                for other in open_
                if isinstance(other, GuardedHttpToolsProtocol)
                and other is not self
                and (other._awaiting_headers or other.lingering)
            ),
            key=lambda other: other._waiting_since,
        )
        for other in idle[:excess]:
            other.transport.close()
        return len(idle) >= excess
