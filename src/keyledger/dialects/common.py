"""Pieces every dialect uses: a route class that renders all errors in the dialect's shape,
and a bounded body reader."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

import orjson
import structlog
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, Field
from starlette.requests import ClientDisconnect

from keyledger.clock import parse_utc_seconds
from keyledger.errors import DeadlineExceeded
from keyledger.observability.middleware import request_id_of, started_of
from keyledger.store import deadline_scope

log = structlog.get_logger("keyledger.dialect")


#: A wire timestamp: ISO 8601 with Z or an offset, stored as UTC whole seconds.
UtcTimestamp = Annotated[
    datetime,
    BeforeValidator(parse_utc_seconds),
    Field(json_schema_extra={"type": "string", "format": "date-time"}),
]


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The request body is larger than {limit} bytes.")
        self.limit = limit


class BodyReadTimeout(DeadlineExceeded):
    """The request body did not arrive within ``body_read_seconds`` of the headers (a slow or
    stalled client); nothing was read into the store, and the connection is closed after the
    answer."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body did not arrive within {seconds:g} s; nothing of it was kept."
        )


class MalformedJson(Exception):
    """A body that is not one clean JSON document. ``reason`` completes "the body …": "is not
    valid JSON", "repeats the key 'X'", "contains a NUL character", "is nested too deeply"."""

    def __init__(self, reason: str = "is not valid JSON") -> None:
        super().__init__(f"The body {reason}.")
        self.reason = reason


class UnsupportedContentType(Exception):
    def __init__(self, content_type: str) -> None:
        super().__init__(
            f"Unsupported content type {content_type!r}; send Content-Type: application/json."
        )


def is_json_content_type(request: Request) -> bool:
    """No Content-Type, ``application/json``, ``text/json`` or any ``…+json``."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in {"", "application/json", "text/json"} or content_type.endswith("+json")


def require_json(request: Request) -> None:
    if not is_json_content_type(request):
        raise UnsupportedContentType(request.headers.get("content-type", ""))


class DialectRoute(APIRoute):
    """Runs the endpoint under the request's deadline and turns *every* exception into the
    dialect's error response (``render_error``), so no stack trace or internal detail leaks."""

    def render_error(self, request: Request, error: Exception) -> Response:
        raise NotImplementedError

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            timeout = request.app.state.context.settings.request_timeout_seconds
            try:
                with deadline_scope(timeout, started=started_of(request.scope)):
                    return await handler(request)
            except ClientDisconnect:
                return client_disconnected(request)
            except Exception as error:  # noqa: BLE001 - every fault gets the dialect's shape
                response = self.render_error(request, error)
                if isinstance(error, BodyReadTimeout):  # the rest of the body is not awaited
                    response.headers["Connection"] = "close"
                return response

        return guarded


#: The status recorded (log line, metrics) for a request whose client went away before the
#: answer: nginx's "client closed request"; not a fault of ours, so not a 5xx.
CLIENT_CLOSED_REQUEST = 499


def client_disconnected(request: Request) -> Response:
    """The client closed the connection mid-request: one info line, no traceback; the answer is
    never sent (the server drops it), its status only labels the request's log line and
    metrics."""
    log.info("client_disconnected", request_id=request_id_of(request.scope), path=request.url.path)
    return Response(status_code=CLIENT_CLOSED_REQUEST)


def log_unexpected(request: Request, error: Exception) -> None:
    log.error(
        "unexpected_error",
        request_id=request_id_of(request.scope),
        path=request.url.path,
        error=type(error).__name__,
        exc_info=error,
    )


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (``BodyTooLarge``), arrived within
    ``body_read_seconds`` of the request's start (``BodyReadTimeout``)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    seconds = request.app.state.context.settings.body_read_seconds
    remaining = started_of(request.scope) + seconds - time.monotonic()
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(max(remaining, 0.0)):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                chunks.append(chunk)
    except TimeoutError:
        raise BodyReadTimeout(seconds) from None
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """One JSON document, refusing what parsers usually let through: repeated keys (which one
    would win?), NUL characters (they end strings in C and in log lines), NaN and Infinity
    (not JSON), and nesting deep enough to exhaust the stack."""
    if b"\\u0000" in raw:
        raise MalformedJson("contains a NUL character (\\u0000)")
    try:
        return json.loads(
            raw, object_pairs_hook=_object_without_repeats, parse_constant=_not_a_number
        )
    except RecursionError:
        raise MalformedJson("is nested too deeply") from None
    except _RepeatedKey as error:
        raise MalformedJson(f"repeats the key {error.args[0]!r}") from None
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise MalformedJson() from None


class _RepeatedKey(Exception):
    pass


def _object_without_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKey(key)
            seen.add(key)
    return found


def _not_a_number(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    try:
        encoded = orjson.dumps(content)
    except TypeError:  # an integer beyond 64 bits echoed back from a request: orjson refuses it
        encoded = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(
        content=encoded,
        status_code=status_code,
        media_type="application/json",
        headers=headers,
    )


def request_body(model: type[Any], *, form: bool = False) -> dict[str, Any]:
    """``openapi_extra`` describing a body the handler reads itself (JSON, optionally a form)."""
    reference = {"$ref": f"#/components/schemas/{model.__name__}"}
    content = {"application/json": {"schema": reference}}
    if form:
        content["application/x-www-form-urlencoded"] = {"schema": reference}
    return {"requestBody": {"required": True, "content": content}}


def error_responses(model: type[Any], descriptions: dict[int, str]) -> dict[int | str, Any]:
    """``responses=`` for the OpenAPI description: each status answers with ``model``."""
    return {status: {"model": model, "description": text} for status, text in descriptions.items()}
