"""One pure-ASGI middleware: a Request-Id on every response, a JSON log line and metrics.

Every response also gets ``X-Content-Type-Options: nosniff`` (a browser never reads a JSON error
as a script or page) and, except Swagger UI's page and files, ``Cache-Control: no-store``:
responses carry PINs, voucher codes and secrets (Mews getAll, Nexudus lists, ``/api/token``), and
one header on every response cannot be forgotten on the next route that carries one.

The log line carries method, path (never the query string: it can hold credential values),
status, duration, dialect and operation; never a header or a body.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyledger.observability.metrics import LATENCY, REQUESTS

log = structlog.get_logger("keyledger.request")

REQUEST_ID_HEADER = b"request-id"
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
#: Static documentation (Swagger UI's page and files): no credential, may be cached.
CACHEABLE_PREFIX = "/docs"


def _cacheable(path: str) -> bool:
    return path == CACHEABLE_PREFIX or path.startswith(CACHEABLE_PREFIX + "/")


def request_id_of(scope: Scope) -> str:
    return str(scope.get("state", {}).get("request_id", ""))


def started_of(scope: Scope) -> float:
    return float(scope.get("state", {}).get("started", time.monotonic()))


def route_labels(scope: Scope) -> tuple[str, str]:
    route: Any = scope.get("route")
    if route is None:
        return "none", "unmatched"
    tags = getattr(route, "tags", None) or ["keyledger"]
    operation = getattr(route, "operation_id", None) or getattr(route, "name", "unknown")
    return str(tags[0]).lower(), str(operation)


class RequestObserver:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        state["started"] = started
        status = 500
        cacheable = _cacheable(str(scope.get("path", "")))

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if cacheable or name.lower() != NO_STORE[0]
                ]
                headers.append((REQUEST_ID_HEADER, request_id.encode("ascii")))
                headers.append(NOSNIFF)
                if not cacheable:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.monotonic() - started
            dialect, operation = route_labels(scope)
            REQUESTS.labels(dialect=dialect, operation=operation, status=str(status)).inc()
            LATENCY.labels(dialect=dialect, operation=operation).observe(elapsed)
            log.info(
                "request",
                request_id=request_id,
                method=scope.get("method"),
                path=scope.get("path"),
                status=status,
                duration_ms=round(elapsed * 1000, 3),
                dialect=dialect,
                operation=operation,
            )
