"""Pieces every dialect uses: a route class that renders all errors in the dialect's shape,
and a bounded body reader."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any

import orjson
import structlog
from fastapi import Request, Response
from fastapi.routing import APIRoute
from pydantic import BeforeValidator, Field

from keyledger.clock import parse_utc_seconds
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


class MalformedJson(Exception):
    pass


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
            except Exception as error:  # noqa: BLE001 - every fault gets the dialect's shape
                return self.render_error(request, error)

        return guarded


def log_unexpected(request: Request, error: Exception) -> None:
    log.error(
        "unexpected_error",
        request_id=request_id_of(request.scope),
        path=request.url.path,
        error=type(error).__name__,
        exc_info=error,
    )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise MalformedJson("The body is not valid JSON.") from None


def json_response(
    content: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        content=orjson.dumps(content),
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
