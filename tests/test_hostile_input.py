"""Hostile and broken bodies, sent to every operation that takes one, in every dialect: each gets a
clear 4xx in the dialect's own error shape, and nothing is written."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from keyledger.store.schema import credentials, events, hotspot_sessions, resources
from tests.support import (
    MEWS_PATH,
    Deployment,
    make_nexudus_tenant,
    make_tenant,
    token_parameters,
)

RESOURCE = "a0000000-0000-4000-8000-0000000000aa"
Send = Callable[[Deployment, dict[str, Any], bytes, str], httpx.Response]


@dataclass(frozen=True)
class Target:
    """One operation: how to send a body, a valid body to spoil, and the dialect's error shape."""

    name: str
    send: Send
    body: Callable[[dict[str, Any]], dict[str, Any]]
    shape: Callable[[httpx.Response], None]


def _mews_shape(response: httpx.Response) -> None:
    assert set(response.json()) == {"Message", "RequestId", "Details"}
    assert response.json()["Message"]


def _nexudus_shape(response: httpx.Response) -> None:
    body = response.json()
    assert body["WasSuccessful"] is False
    assert body["Status"] == response.status_code
    assert body["Message"]


def _api_shape(response: httpx.Response) -> None:
    body = response.json()
    assert set(body) == {"Status", "Error", "Message", "RequestId"}
    assert body["Status"] == response.status_code


def _mews(operation: str) -> Send:
    def send(d: Deployment, _: dict[str, Any], raw: bytes, content_type: str) -> httpx.Response:
        return d.http.post(
            f"{MEWS_PATH}/{operation}", content=raw, headers={"Content-Type": content_type}
        )

    return send


def _nexudus(method: str, path: str) -> Send:
    def send(d: Deployment, who: dict[str, Any], raw: bytes, content_type: str) -> httpx.Response:
        return d.http.request(
            method, path, content=raw, headers={"Content-Type": content_type}, auth=who["auth"]
        )

    return send


def _api(method: str, path: str) -> Send:
    def send(d: Deployment, who: dict[str, Any], raw: bytes, content_type: str) -> httpx.Response:
        return d.http.request(
            method,
            path.format(**who),
            content=raw,
            headers={"Content-Type": content_type, "Authorization": f"Bearer {who['token']}"},
        )

    return send


def _mews_body(extra: dict[str, Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    return lambda who: {**who["mews"], **extra}


TARGETS = [
    Target(
        "mews add",
        _mews("add"),
        _mews_body({"ResourceAccessTokenParameters": [token_parameters(value="1357#")]}),
        _mews_shape,
    ),
    Target(
        "mews update",
        _mews("update"),
        _mews_body(
            {
                "ResourceAccessTokenUpdates": [
                    {"ResourceAccessTokenId": str(uuid.uuid4()), "Value": {"Value": "2468#"}}
                ]
            }
        ),
        _mews_shape,
    ),
    Target("mews delete", _mews("delete"), _mews_body({"Ids": [str(uuid.uuid4())]}), _mews_shape),
    Target(
        "mews getAll",
        _mews("getAll"),
        _mews_body({"ServiceOrderIds": [str(uuid.uuid4())], "Limitation": {"Count": 10}}),
        _mews_shape,
    ),
    Target(
        "nexudus create",
        _nexudus("POST", "/api/spaces/accesstokens"),
        lambda who: {"BusinessId": who["business"], "AccessCode": "HOSTILE1", "MinutesIncluded": 5},
        _nexudus_shape,
    ),
    Target(
        "nexudus replace",
        _nexudus("PUT", "/api/spaces/accesstokens"),
        lambda who: {"Id": 1, "BusinessId": who["business"], "AccessCode": "HOSTILE2"},
        _nexudus_shape,
    ),
    Target(
        "nexudus command",
        _nexudus("POST", "/api/spaces/accesstokens/runcommand"),
        lambda who: {"Key": "BULK_CREATE", "Parameters": [{"Name": "Count", "Value": 2}]},
        _nexudus_shape,
    ),
    Target(
        "v1 put resource",
        _api("PUT", f"/api/v1/resources/{RESOURCE}"),
        lambda who: {"EnterpriseId": who["enterprise"], "Kind": "Building", "Name": "Hostile"},
        _api_shape,
    ),
    Target(
        "v1 door check",
        _api("POST", "/api/v1/access/check"),
        lambda who: {"ResourceId": RESOURCE, "Type": "PinCode", "Value": "1234#"},
        _api_shape,
    ),
    Target(
        "v1 hotspot session",
        _api("POST", "/api/v1/hotspot/sessions"),
        lambda who: {"BusinessId": who["business"], "AccessCode": "NOPE", "DeviceId": "d1"},
        _api_shape,
    ),
    Target(
        "v1 usage report",
        _api("POST", "/api/v1/hotspot/sessions/{session}/usage"),
        lambda who: {"ElapsedSeconds": 30},
        _api_shape,
    ),
]


def _spoil(how: str, body: dict[str, Any], limit: int) -> tuple[bytes, str]:
    """The valid body turned hostile, with the content type to send it under."""
    text = json.dumps(body)
    first_key = next(iter(body))
    first_string = next((key for key, value in body.items() if isinstance(value, str)), None)
    if how == "oversized":
        return json.dumps({**body, "Padding": "x" * limit}).encode(), "application/json"
    if how == "deep nesting":
        return ("[" * 100_000 + "]" * 100_000).encode(), "application/json"
    if how == "invalid UTF-8":
        return text.encode()[:-1] + b'"\xff\xfe"}', "application/json"
    if how == "NUL byte":
        return json.dumps({**body, first_string or "Note": "ab\x00cd"}).encode(), "application/json"
    if how == "duplicate key":
        repeated = json.dumps({first_key: body[first_key]})[1:-1]
        return (text[:-1] + ", " + repeated + "}").encode(), "application/json"
    if how == "wrong content type":
        return text.encode(), "application/xml"
    if how == "number for a string":  # or, with no string to spoil, a string for a number
        wrong = {first_string: 12345} if first_string else {first_key: str(body[first_key])}
        return json.dumps({**body, **wrong}).encode(), "application/json"
    raise AssertionError(how)


HOW = [
    "oversized",
    "deep nesting",
    "invalid UTF-8",
    "NUL byte",
    "duplicate key",
    "wrong content type",
    "number for a string",
]


def _rows(deployment: Deployment) -> tuple[int, ...]:
    with deployment.store.read() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (credentials, events, resources, hotspot_sessions)
        )


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_every_hostile_body_gets_a_clear_4xx_and_writes_nothing(
    shared_deployment: Deployment, target: Target
) -> None:
    tenant = make_tenant(shared_deployment)
    space = make_nexudus_tenant(shared_deployment)
    who: dict[str, Any] = {
        "mews": tenant.credentials,
        "token": tenant.access_token,
        "enterprise": str(tenant.enterprise_id),
        "business": space.business_id if target.name.startswith("nexudus") else tenant.business_id,
        "auth": space.auth,
        "session": str(uuid.uuid4()),
    }
    limit = shared_deployment.settings.max_body_bytes
    before = _rows(shared_deployment)
    for how in HOW:
        raw, content_type = _spoil(how, target.body(who), limit)
        response = target.send(shared_deployment, who, raw, content_type)
        assert 400 <= response.status_code < 500, (how, response.status_code, response.text)
        target.shape(response)
        assert "Traceback" not in response.text
        assert _rows(shared_deployment) == before, how
