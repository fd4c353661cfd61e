"""Every domain error has an explicit answer in every dialect's error table, and the answers that
were 500 before the tables existed are proper ones.

A new ``DomainError`` class fails ``test_every_domain_error_has_an_entry_in_every_table`` until
each dialect says what it answers (docs/architecture.md, "Errors: one table per dialect").
"""

from __future__ import annotations

import importlib
import pkgutil
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import capture_logs

import keyledger
from keyledger.kit.errors import (
    DomainError,
    GuessingThrottled,
    KeysMissing,
    ResourceNotFound,
    SessionNotFound,
)
from keyledger.store import Store
from keyledger.web import routing
from keyledger.web.api import errors as api_errors
from keyledger.web.app import create_app
from keyledger.web.mews import errors as mews_errors
from keyledger.web.nexudus import errors as nexudus_errors
from keyledger.web.routing import DialectRoute
from tests.support import DatabaseFactory, LiveServer, settings_for

TABLES: dict[str, dict[type[DomainError], Any]] = {
    "mews": dict(mews_errors.ERRORS),
    "nexudus": dict(nexudus_errors.ERRORS),
    "nexudus /api/token": dict(nexudus_errors.OAUTH_ERRORS),
    "api": dict(api_errors.ERRORS),
}


def _subclasses(cls: type[DomainError]) -> Iterator[type[DomainError]]:
    for sub in cls.__subclasses__():
        yield sub
        yield from _subclasses(sub)


def every_domain_error() -> list[type[DomainError]]:
    """``DomainError`` and every subclass defined anywhere in keyledger (each module imported, so
    that a class defined outside kit/errors.py is found too)."""
    for module in pkgutil.walk_packages(keyledger.__path__, "keyledger."):
        if module.name.rpartition(".")[2] in {"asgi", "__main__"} or ".migrations" in module.name:
            continue  # imported for their side effects (an app, a command, a migration run)
        importlib.import_module(module.name)
    found: set[type[DomainError]] = {DomainError, *_subclasses(DomainError)}
    return sorted(
        (cls for cls in found if cls.__module__.startswith("keyledger.")),
        key=lambda cls: cls.__qualname__,
    )


def test_the_walk_finds_errors_defined_outside_kit() -> None:
    names = {cls.__qualname__ for cls in every_domain_error()}
    assert {"MissingPermission", "BodyReadTimeout", "KeysMissing", "WriteConflict"} <= names


@pytest.mark.parametrize("dialect", sorted(TABLES))
def test_every_domain_error_has_an_entry_in_every_table(dialect: str) -> None:
    table = TABLES[dialect]
    missing = [
        f"{cls.__module__}.{cls.__qualname__}" for cls in every_domain_error() if cls not in table
    ]
    assert not missing, f"the {dialect} error table has no entry for {missing}"


# The answers that were 500 before the tables (latent: no operation of these dialects raises them
# yet), through each dialect's error function.


@pytest.mark.parametrize(
    "error",
    [
        ResourceNotFound("No resource x in scope.", subject="resource"),
        SessionNotFound("No session x in scope.", subject="session"),
    ],
)
def test_not_found_is_a_400_in_mews_and_a_404_in_nexudus(error: DomainError) -> None:
    status, message, headers = mews_errors.status_and_message("update", error)
    assert (status, headers) == (400, None)
    assert message == f"Invalid {error.subject}: {error.message}"
    mapped = nexudus_errors.status_of(error)
    assert (mapped.status, mapped.message) == (404, "Record not found")
    assert mapped.errors == [
        {"AttemptedValue": None, "Message": "was not found", "PropertyName": "Id"}
    ]


def test_guessing_throttled_is_a_throttle_in_nexudus_and_the_api() -> None:
    error = GuessingThrottled(7)
    mapped = nexudus_errors.status_of(error)
    assert (mapped.status, mapped.headers) == (409, {"Retry-After": "7"})
    assert api_errors.classify(error) == (429, "Throttled", error.message)
    assert api_errors.headers_of(error, 429) == {"Retry-After": "7"}


# Through a real request: a route of each dialect's class that raises the error, on an app built
# as the server builds it (its middleware gives the Request-Id).


@pytest.fixture
def client(sqlite_databases: DatabaseFactory) -> Iterator[httpx.Client]:
    url = sqlite_databases.new_url()
    settings = settings_for(url)
    store = Store(settings)
    app = create_app(settings, store=store)
    raised: dict[str, Exception] = {
        "resource": ResourceNotFound("No resource R-1 in scope.", subject="resource"),
        "session": SessionNotFound("No session S-1 in scope.", subject="session"),
        "keys": KeysMissing("values are sealed with key(s) abcd."),
        "fault": RuntimeError("boom"),
    }

    def raising(kind: str) -> Any:
        async def endpoint() -> None:
            raise raised[kind]

        return endpoint

    routes: dict[str, type[DialectRoute]] = {
        "mews": mews_errors.MewsRoute,
        "nexudus": nexudus_errors.NexudusRoute,
        "token": nexudus_errors.TokenRoute,
        "api": api_errors.ApiRoute,
    }
    for dialect, route_class in routes.items():
        for kind in raised:
            app.router.add_api_route(
                f"/probe/{dialect}/{kind}",
                raising(kind),
                methods=["POST"],
                route_class_override=route_class,
                name=f"probe_{dialect}_{kind}",
            )
    server = LiveServer(app).start()
    yield server.http
    server.stop()
    store.dispose()


def _request_id(response: Any) -> str:
    value = response.headers["Request-Id"]
    assert uuid.UUID(value)
    return str(value)


def test_resource_not_found_through_a_mews_route(client: httpx.Client) -> None:
    response = client.post("/probe/mews/resource")
    assert response.status_code == 400
    assert response.json() == {
        "Message": "Invalid resource: No resource R-1 in scope.",
        "RequestId": _request_id(response),
        "Details": None,
    }


def test_session_not_found_through_a_nexudus_route(client: httpx.Client) -> None:
    response = client.post("/probe/nexudus/session")
    assert response.status_code == 404
    body = response.json()
    assert (body["Status"], body["Message"], body["WasSuccessful"]) == (
        404,
        "Record not found",
        False,
    )


@pytest.mark.parametrize("dialect", ["mews", "nexudus", "token", "api"])
@pytest.mark.parametrize("kind", ["keys", "fault"])
def test_unexpected_errors_answer_500_in_the_dialect_shape_and_are_logged(
    client: httpx.Client, dialect: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with capture_logs() as captured:
        monkeypatch.setattr(routing, "log", structlog.get_logger("keyledger.dialect"))
        response = client.post(f"/probe/{dialect}/{kind}")
    assert response.status_code == 500
    body = response.json()
    text = response.text
    assert "boom" not in text and "abcd" not in text
    if dialect == "mews":
        assert set(body) == {"Message", "RequestId", "Details"}
    elif dialect == "nexudus":
        assert body["Status"] == 500 and body["WasSuccessful"] is False
    elif dialect == "token":
        assert body["error"] == "server_error"
    else:
        assert (body["Status"], body["Error"]) == (500, "Unexpected")
    logged = [line for line in captured if line["event"] == "unexpected_error"]
    assert len(logged) == 1
    assert logged[0]["request_id"] == _request_id(response)
