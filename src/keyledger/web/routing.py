"""Pieces every dialect uses: a route class that renders all errors in the dialect's shape,
and a bounded body reader."""

from __future__ import annotations

import asyncio
import codecs
import json
import time
import traceback
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

import orjson
import structlog
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, Field
from sqlalchemy.exc import DBAPIError
from starlette.requests import ClientDisconnect

from keyledger.kit.clock import parse_utc_seconds
from keyledger.kit.errors import DeadlineExceeded, InvalidInput
from keyledger.kit.inputs import first_refused, refused_character
from keyledger.store import deadline_scope
from keyledger.web.middleware import request_id_of, started_of

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
    """The request body did not arrive within ``body_read_seconds`` of the headers, plus the time
    its size needs at ``body_min_bytes_per_second`` (a slow or
    stalled client); nothing was read into the store, and the connection is closed after the
    answer."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The request body did not arrive within {seconds:g} s (and the time its size needs "
            "at the minimum rate); nothing of it was kept."
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
                refuse_hostile_text(request)
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


def refuse_hostile_text(request: Request) -> None:
    """The text policy (``keyledger.kit.inputs``) over the query string and the path parameters:
    a NUL, control character or lone surrogate is a 400 naming the parameter, before anything
    is looked up. (Bodies: ``parse_json`` and the form readers; credentials: their readers.)
    Invalid UTF-8 there (``%ED%A0%80``: an encoded surrogate) is refused too, rather than read as
    U+FFFD."""
    for raw, name in (
        (request.scope.get("query_string", b""), "query string"),
        (_raw_path(request), "path"),
    ):
        try:
            unquote_to_bytes(raw.replace(b"+", b" ")).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("is not valid UTF-8", subject=name) from None
    for name, value in (*request.query_params.multi_items(), *request.path_params.items()):
        reason = refused_character(name) or refused_character(str(value))
        if reason is not None:
            shown = "parameter name" if refused_character(name) else name
            raise InvalidInput(reason, subject=shown)


def _raw_path(request: Request) -> bytes:
    raw = request.scope.get("raw_path")
    return raw if isinstance(raw, bytes) else b""


def log_unexpected(request: Request, error: Exception) -> None:
    """One log line for a fault. A database error's message can hold the values of its
    statement (a unique violation's DETAIL names the key): only its type, SQLSTATE and where it
    was raised are logged, never its text."""
    database_error = _database_error(error)
    if database_error is None:
        log.error(
            "unexpected_error",
            request_id=request_id_of(request.scope),
            path=request.url.path,
            error=type(error).__name__,
            exc_info=error,
        )
        return
    original = getattr(database_error, "orig", None)
    log.error(
        "unexpected_error",
        request_id=request_id_of(request.scope),
        path=request.url.path,
        error=type(error).__name__,
        database_error=type(original).__name__ if original is not None else None,
        sqlstate=getattr(original, "sqlstate", None) or getattr(original, "sqlite_errorname", None),
        where=[
            f"{frame.filename}:{frame.lineno} {frame.name}"
            for frame in traceback.extract_tb(error.__traceback__)[-8:]
        ],
    )


def _database_error(error: BaseException | None) -> DBAPIError | None:
    seen = 0
    while error is not None and seen < 10:
        if isinstance(error, DBAPIError):
            return error
        error = error.__cause__ or error.__context__
        seen += 1
    return None


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, at most ``limit`` bytes (``BodyTooLarge``), arriving in time
    (``BodyReadTimeout``): within ``body_read_seconds`` of the request's start plus one second
    per ``body_min_bytes_per_second`` received, so a slow but steady client can send a large
    body while one that trickles bytes is cut off."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    settings = request.app.state.context.settings
    grace, rate = settings.body_read_seconds, settings.body_min_bytes_per_second
    started = started_of(request.scope)
    chunks: list[bytes] = []
    size = 0
    stream = request.stream().__aiter__()
    while True:
        remaining = started + grace + size / rate - time.monotonic()
        try:
            async with asyncio.timeout(max(remaining, 0.0)):
                chunk = await anext(stream)
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise BodyReadTimeout(grace) from None
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    """One JSON document, refusing what parsers usually let through: repeated keys (which one
    would win?), invalid UTF-8 (encoded surrogates included), NUL and other control characters
    and lone surrogates in any string (``keyledger.kit.inputs``), NaN and Infinity (not JSON), and
    nesting deep enough to exhaust the stack."""
    try:
        # Strict UTF-8 (a leading BOM allowed): json.loads(bytes) would let surrogates through.
        text = raw.removeprefix(codecs.BOM_UTF8).decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("is not valid UTF-8") from None
    try:
        document = json.loads(
            text, object_pairs_hook=_object_without_repeats, parse_constant=_not_a_number
        )
    except RecursionError:
        raise MalformedJson("is nested too deeply") from None
    except _RepeatedKey as error:
        raise MalformedJson(f"repeats the key {error.args[0]!r}") from None
    except ValueError:  # JSONDecodeError is a ValueError
        raise MalformedJson() from None
    # Refused characters arrive as escapes (\u0000, \b, \f, \ud800) or as a raw DEL (valid
    # JSON and UTF-8); other raw ones are not valid JSON or not valid UTF-8. Most bodies have
    # none, and are not walked.
    if "\\u" in text or "\\b" in text or "\\f" in text or "\x7f" in text:
        reason = first_refused(document)
        if reason is not None:
            raise MalformedJson(reason.replace("NUL character", "NUL character (\\u0000)"))
    return document


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
