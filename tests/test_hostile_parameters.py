"""Every parameter of every operation, hostile (issue 11): NUL, lone surrogates, control
characters, integers at and beyond each storage bound, timestamps at years 1 and 9999 with
offsets, look-alike voucher codes. Sent to a real ``keyledger serve --workers 2`` on each
database: every answer is a 4xx in the dialect's shape with a Request-Id (or a 2xx where the
value is valid), a 4xx writes nothing, nothing answers 500, and no probe value reaches the log.

The operations come from the app's OpenAPI description: an operation without an entry in
``CASES`` fails the test, and every body property its schema names is probed, so a new parameter
is covered without a change here.
"""

from __future__ import annotations

import base64
import json
import socket
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select, text

from keyledger.domain.callers.integrations import add_access_token, add_integration
from keyledger.domain.callers.users import add_user
from keyledger.domain.properties.service import add_property
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.schema import credentials, events, hotspot_sessions, resources
from keyledger.web.app import create_app
from keyledger.web.nexudus.query import PROPERTIES
from tests.ops.harness import start_server
from tests.support import DatabaseFactory, record_figures, settings_for, token_parameters

pytestmark = pytest.mark.slow  # starts `keyledger serve --workers 2` per database

MARK = "hq" + uuid.uuid4().hex[:10]  # in every string probe: grepped for in the server's log
PATH_MARK = "pq" + uuid.uuid4().hex[:10]  # path probes: the request log line names the path

#: (label, value, must be refused). Strings carry MARK so the log can be searched for them.
STRING_PROBES: list[tuple[str, Any, bool]] = [
    ("NUL", f"{MARK}\x00x", True),
    ("lone surrogate", f"{MARK}\ud800x", True),
    ("control character", f"{MARK}\x01x", True),
    ("DEL", f"{MARK}\x7fx", True),
]
INTEGER_PROBES: list[tuple[str, Any, bool]] = [
    ("2^31-1", 2**31 - 1, False),
    ("2^31", 2**31, False),
    ("2^53", 2**53, False),
    ("2^63-1", 2**63 - 1, False),
    ("2^63", 2**63, False),
    ("2^64", 2**64, False),
    ("-2^64", -(2**64), False),
]
TIME_PROBES: list[tuple[str, Any, bool]] = [
    ("year 1 +01:00", "0001-01-01T00:00:00+01:00", False),
    ("year 1 Z", "0001-01-01T00:00:00Z", False),
    ("year 1 -01:00", "0001-01-01T00:00:00-01:00", False),
    ("year 9999 +01:00", "9999-12-31T23:59:59+01:00", False),
    ("year 9999 -01:00", "9999-12-31T23:59:59-01:00", False),
    ("year 9999 Z", "9999-12-31T23:59:59Z", False),
    ("day 9999-12-31", "9999-12-31", False),
]
CODE_PROBES: list[tuple[str, Any, bool]] = [
    ("NFD", unicodedata.normalize("NFD", "Café" + MARK), False),
    ("fullwidth", "".join(chr(ord(c) + 0xFEE0) for c in "AB12") + MARK, False),
    ("zero-width space", "\u200b", False),
    ("edge space", f" {MARK} ", False),
]
PROBES = [*STRING_PROBES, *INTEGER_PROBES, *TIME_PROBES, *CODE_PROBES]


# ---- the world each operation is probed in ----


@dataclass
class World:
    http: httpx.Client
    store: Store
    mews: dict[str, str]
    access_token: str
    business_id: int
    enterprise_id: str
    email: str
    password: str
    voucher_id: int
    voucher_code: str
    reservation_id: str
    resource_id: str
    session_id: str


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _build_world(url: str, http: httpx.Client) -> World:
    store = Store(settings_for(url))
    prop = add_property(store, name="Hostile parameters")
    integration = add_integration(store, name="hostile")
    token = add_access_token(
        store, client_token=integration.secret, enterprise_ids=[prop.enterprise_id]
    )
    email, password = f"hostile-{uuid.uuid4().hex[:8]}@example.com", "a long password"
    add_user(
        store,
        email=email,
        password=password,
        business_ids=[prop.business_id],
        roles=(
            "AccessToken-List",
            "AccessToken-Read",
            "AccessToken-Create",
            "AccessToken-Edit",
            "AccessToken-Delete",
        ),
    )
    mews = {"ClientToken": integration.secret, "AccessToken": token.secret, "Client": "t 1.0"}
    bearer = {"Authorization": f"Bearer {token.secret}"}
    code = f"HOSTILE-{uuid.uuid4().hex[:8]}"
    made = http.post(
        "/api/spaces/accesstokens",
        json={"BusinessId": prop.business_id, "AccessCode": code, "MinutesIncluded": 600},
        auth=(email, password),
    )
    assert made.status_code == 200, made.text
    added = http.post(
        "/api/connector/v1/resourceAccessTokens/add",
        json={**mews, "ResourceAccessTokenParameters": [token_parameters()]},
    )
    assert added.status_code == 200, added.text
    resource_id = str(uuid.uuid4())
    put = http.put(
        f"/api/v1/resources/{resource_id}",
        json={"Kind": "Building", "Name": "Main"},
        headers=bearer,
    )
    assert put.status_code in {200, 201}, put.text
    started = http.post(
        "/api/v1/hotspot/sessions",
        json={"BusinessId": prop.business_id, "AccessCode": code, "DeviceId": "d1"},
        headers=bearer,
    )
    assert started.status_code == 200, started.text
    return World(
        http=http,
        store=store,
        mews=mews,
        access_token=token.secret,
        business_id=prop.business_id,
        enterprise_id=str(prop.enterprise_id),
        email=email,
        password=password,
        voucher_id=int(made.json()["Value"]["Id"]),
        voucher_code=code,
        reservation_id=added.json()["ResourceAccessTokens"][0]["Id"],
        resource_id=resource_id,
        session_id=started.json()["SessionId"],
    )


# ---- one valid request per operation ----


@dataclass
class Call:
    """One request: ``body`` is JSON unless ``form``; ``auth`` is Basic (Nexudus) or bearer."""

    method: str
    path: str
    query: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    form: bool = False
    basic: tuple[str, str] | None = None
    bearer: str | None = None


@dataclass(frozen=True)
class Case:
    build: Callable[[World], Call]
    shape: Callable[[httpx.Response], None]
    #: Parameters the OpenAPI description does not list (Nexudus list filters are free-form).
    extra_query: tuple[str, ...] = ()
    #: The body is also sent form-encoded (Nexudus reads both).
    also_form: bool = False


def _mews_shape(response: httpx.Response) -> None:
    body = response.json()
    assert set(body) == {"Message", "RequestId", "Details"}, body
    assert body["RequestId"] == response.headers["request-id"]


def _nexudus_shape(response: httpx.Response) -> None:
    body = response.json()
    assert body["WasSuccessful"] is False, body
    assert body["Status"] == response.status_code
    assert isinstance(body["Errors"], list)


def _token_shape(response: httpx.Response) -> None:
    assert set(response.json()) == {"error", "error_description"}, response.text


def _api_shape(response: httpx.Response) -> None:
    body = response.json()
    assert set(body) == {"Status", "Error", "Message", "RequestId"}, body
    assert body["RequestId"] == response.headers["request-id"]


def _ops_shape(response: httpx.Response) -> None:
    raise AssertionError(f"an operations endpoint refused a request: {response.text}")


MEWS = "/api/connector/v1/resourceAccessTokens"
NEXUDUS = "/api/spaces/accesstokens"
LIST_FILTERS = (
    "page",
    "size",
    "orderby",
    "dir",
    "AccessToken_Id",
    *(f"AccessToken_{p.name}" for p in {id(p): p for p in PROPERTIES.values()}.values()),
    *(
        f"{side}_AccessToken_{p.name}"
        for p in {id(p): p for p in PROPERTIES.values()}.values()
        if p.ranged
        for side in ("From", "To")
    ),
)


def _nexudus(method: str, path: str, body: dict[str, Any] | None = None) -> Callable[[World], Call]:
    def build(w: World) -> Call:
        filled = (
            None if body is None else json.loads(json.dumps(body).replace("$ID", str(w.voucher_id)))
        )
        if filled is not None and "BusinessId" in filled:
            filled["BusinessId"] = w.business_id
        return Call(
            method,
            path.replace("{Id}", str(w.voucher_id)),
            body=filled,
            basic=(w.email, w.password),
        )

    return build


def _code() -> str:
    return f"HP-{uuid.uuid4().hex[:10]}"


CASES: dict[str, Case] = {
    "mews_resourceAccessTokens_getAll": Case(
        lambda w: Call(
            "POST",
            f"{MEWS}/getAll",
            body={
                **w.mews,
                "EnterpriseIds": [w.enterprise_id],
                "ResourceAccessTokenIds": [w.reservation_id],
                "ServiceOrderIds": [str(uuid.uuid4())],
                "CollidingUtc": {
                    "StartUtc": "2030-01-01T00:00:00Z",
                    "EndUtc": "2030-01-02T00:00:00Z",
                },
                "UpdatedUtc": {
                    "StartUtc": "2026-01-01T00:00:00Z",
                    "EndUtc": "2026-02-01T00:00:00Z",
                },
                "ActivityStates": ["Active"],
                "Limitation": {"Count": 10, "Cursor": str(uuid.uuid4())},
            },
        ),
        _mews_shape,
    ),
    "mews_resourceAccessTokens_add": Case(
        lambda w: Call(
            "POST",
            f"{MEWS}/add",
            body={
                **w.mews,
                "EnterpriseId": w.enterprise_id,
                "ResourceAccessTokenParameters": [
                    token_parameters(
                        CompanionshipId=str(uuid.uuid4()),
                        ResourceId=w.resource_id,
                        SerialNumber="SN-1",
                        start="2031-01-01T00:00:00Z",
                        end="2031-01-02T00:00:00Z",
                    )
                ],
            },
        ),
        _mews_shape,
    ),
    "mews_resourceAccessTokens_update": Case(
        lambda w: Call(
            "POST",
            f"{MEWS}/update",
            body={
                **w.mews,
                "EnterpriseId": w.enterprise_id,
                "ResourceAccessTokenUpdates": [
                    {
                        "ResourceAccessTokenId": w.reservation_id,
                        "ValidityStartUtc": {"Value": "2030-01-01T14:00:00Z"},
                        "ValidityEndUtc": {"Value": "2030-01-05T10:00:00Z"},
                        "Value": {"Value": "97531#"},
                        "Permissions": {"Room": {"Value": True}},
                    }
                ],
            },
        ),
        _mews_shape,
    ),
    "mews_resourceAccessTokens_delete": Case(
        lambda w: Call("POST", f"{MEWS}/delete", body={**w.mews, "Ids": [str(uuid.uuid4())]}),
        _mews_shape,
    ),
    "nexudus_accesstokens_list": Case(
        lambda w: Call("GET", NEXUDUS, query={"page": 1}, basic=(w.email, w.password)),
        _nexudus_shape,
        extra_query=LIST_FILTERS,
    ),
    "nexudus_accesstokens_commands": Case(_nexudus("GET", f"{NEXUDUS}/commands"), _nexudus_shape),
    "nexudus_accesstokens_get": Case(_nexudus("GET", f"{NEXUDUS}/{{Id}}"), _nexudus_shape),
    "nexudus_accesstokens_delete": Case(
        lambda w: Call("DELETE", f"{NEXUDUS}/999999999", basic=(w.email, w.password)),
        _nexudus_shape,
    ),
    "nexudus_accesstokens_create": Case(
        lambda w: Call(
            "POST",
            NEXUDUS,
            body={
                "BusinessId": w.business_id,
                "AccessCode": _code(),
                "MinutesIncluded": 60,
                "Description": "desk",
                "ValidFrom": "2030-01-01T00:00:00Z",
                "ValidTo": "2030-02-01T00:00:00Z",
                "UserLimit": 2,
                "SystemId": "S-1",
            },
            basic=(w.email, w.password),
        ),
        _nexudus_shape,
        also_form=True,
    ),
    "nexudus_accesstokens_replace": Case(
        lambda w: Call(
            "PUT",
            NEXUDUS,
            body={
                "Id": w.voucher_id,
                "BusinessId": w.business_id,
                "AccessCode": w.voucher_code,
                "MinutesIncluded": 600,
                "Description": "desk",
                "ValidFrom": "2020-01-01T00:00:00Z",
                "ValidTo": "2040-02-01T00:00:00Z",
                "UserLimit": 2,
                "SystemId": "S-1",
            },
            basic=(w.email, w.password),
        ),
        _nexudus_shape,
        also_form=True,
    ),
    "nexudus_accesstokens_runcommand": Case(
        lambda w: Call(
            "POST",
            f"{NEXUDUS}/runcommand",
            body={
                "Key": "ADD_MINUTES",
                "Ids": [w.voucher_id],
                "Parameters": [{"Name": "Minutes", "Type": "int", "Value": 1}],
            },
            basic=(w.email, w.password),
        ),
        _nexudus_shape,
    ),
    "nexudus_token": Case(
        lambda w: Call(
            "POST",
            "/api/token",
            body={
                "grant_type": "password",
                "username": w.email,
                "password": w.password,
                "refresh_token": "x",
            },
            form=True,
        ),
        _token_shape,
    ),
    "v1_resources_list": Case(
        lambda w: Call(
            "GET",
            "/api/v1/resources",
            query={"EnterpriseId": w.enterprise_id},
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "v1_resources_get": Case(
        lambda w: Call("GET", f"/api/v1/resources/{w.resource_id}", bearer=w.access_token),
        _api_shape,
    ),
    "v1_resources_put": Case(
        lambda w: Call(
            "PUT",
            f"/api/v1/resources/{uuid.uuid4()}",
            body={
                "EnterpriseId": w.enterprise_id,
                "ParentId": w.resource_id,
                "Kind": "Floor",
                "Name": "Floor 1",
            },
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "v1_resources_delete": Case(
        lambda w: Call("DELETE", f"/api/v1/resources/{uuid.uuid4()}", bearer=w.access_token),
        _api_shape,
    ),
    "v1_access_check": Case(
        lambda w: Call(
            "POST",
            "/api/v1/access/check",
            body={
                "ResourceId": w.resource_id,
                "Type": "PinCode",
                "Value": "1234#",
                "At": "2030-01-02T00:00:00Z",
            },
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "v1_hotspot_session_start": Case(
        lambda w: Call(
            "POST",
            "/api/v1/hotspot/sessions",
            body={"BusinessId": w.business_id, "AccessCode": w.voucher_code, "DeviceId": "d2"},
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "v1_hotspot_session_usage": Case(
        lambda w: Call(
            "POST",
            f"/api/v1/hotspot/sessions/{w.session_id}/usage",
            body={"ElapsedSeconds": 1},
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "v1_hotspot_session_end": Case(
        lambda w: Call(
            "POST",
            f"/api/v1/hotspot/sessions/{uuid.uuid4()}/end",
            body={"ElapsedSeconds": 0},
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "v1_events_list": Case(
        lambda w: Call(
            "GET",
            "/api/v1/events",
            query={
                "CredentialId": str(uuid.uuid4()),
                "ResourceId": w.resource_id,
                "Kind": "CredentialCreated",
                "StartUtc": "2026-01-01T00:00:00Z",
                "EndUtc": "2027-01-01T00:00:00Z",
                "Limit": 10,
                "Cursor": 5,
            },
            bearer=w.access_token,
        ),
        _api_shape,
    ),
    "ops_healthz": Case(lambda w: Call("GET", "/healthz"), _ops_shape),
    "ops_readyz": Case(lambda w: Call("GET", "/readyz"), _ops_shape),
    "ops_metrics": Case(lambda w: Call("GET", "/metrics"), _ops_shape),
}


# ---- the operations and their parameters, from the OpenAPI description ----


def _openapi() -> dict[str, Any]:
    spec: dict[str, Any] = create_app(Settings(database_url="sqlite://")).openapi()
    return spec


def _operations() -> dict[str, tuple[str, str, dict[str, Any]]]:
    spec = _openapi()
    return {
        op["operationId"]: (method.upper(), path, op)
        for path, methods in spec["paths"].items()
        for method, op in methods.items()
    }


def _body_properties(spec: dict[str, Any], op: dict[str, Any]) -> set[str]:
    """The top-level body properties the operation's schema names."""
    names: set[str] = set()
    for content in op.get("requestBody", {}).get("content", {}).values():
        schema = content["schema"]
        if "$ref" in schema:
            schema = spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
        names.update(schema.get("properties", {}))
    return names


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every leaf of a JSON document, as a path of keys and indexes."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def _replaced(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    copy = json.loads(json.dumps(document))
    target = copy
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return copy


def _encode(value: Any) -> str:
    """A query or form value, percent-encoded as UTF-8 (a lone surrogate as its 3 bytes)."""
    return quote(str(value).encode("utf-8", "surrogatepass"), safe="")


def _send(world: World, call: Call) -> httpx.Response:
    headers: dict[str, str] = {}
    if call.basic is not None:
        raw = f"{call.basic[0]}:{call.basic[1]}".encode("utf-8", "surrogatepass")
        headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
    if call.bearer is not None:
        headers["Authorization"] = f"Bearer {call.bearer}"
    path = call.path
    if call.query:
        path += "?" + "&".join(f"{_encode(k)}={_encode(v)}" for k, v in call.query.items())
    content: bytes | None = None
    if call.body is not None and call.form:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        content = "&".join(f"{_encode(k)}={_encode(v)}" for k, v in call.body.items()).encode()
    elif call.body is not None:
        headers["Content-Type"] = "application/json"
        content = json.dumps(call.body).encode()  # ensure_ascii: a surrogate as \ud800
    return world.http.request(call.method, path, content=content, headers=headers)


def _variants(
    world: World, case: Case, op: dict[str, Any], template: str, spec: dict[str, Any]
) -> Iterator[tuple[str, Call]]:
    """``(parameter, call)`` for every parameter of the operation and every probe value."""
    base = case.build(world)
    query_names = [p["name"] for p in op.get("parameters", []) if p["in"] == "query"]
    path_names = [p["name"] for p in op.get("parameters", []) if p["in"] == "path"]
    for label, value, _ in PROBES:
        for name in (*query_names, *case.extra_query):
            call = case.build(world)
            call.query = {**call.query, name: value}
            yield f"query {name} = {label}", call
        for name in path_names:
            call = case.build(world)
            shown = value.replace(MARK, PATH_MARK) if isinstance(value, str) else value
            segment = _encode(shown) if str(shown).strip() else "%20"
            parts = call.path.split("/")
            position = template.split("/").index("{" + name + "}")
            parts[position] = segment
            call.path = "/".join(parts)
            yield f"path {name} = {label}", call
        if base.body is not None:
            leaves = list(_leaves(base.body))
            missing = _body_properties(spec, op) - set(base.body)
            for path in [*leaves, *((name,) for name in sorted(missing))]:
                for form in (False, True) if case.also_form else (call_form(base),):
                    call = case.build(world)
                    assert call.body is not None
                    call.body = _replaced(call.body, path, value)
                    call.form = form
                    kind = "form" if form else "body"
                    yield f"{kind} {'.'.join(map(str, path))} = {label}", call
        if base.basic is not None and isinstance(value, str):
            call = case.build(world)
            call.basic = (value + "@example.com", world.password)
            yield f"header Basic e-mail = {label}", call
        # A header carries printable ASCII only (the HTTP client refuses the rest): the other
        # probes reach a bearer token through /api/token's form, probed above.
        shown = str(value)
        if base.bearer is not None and shown.isascii() and shown.isprintable():
            call = case.build(world)
            call.bearer = str(value).strip() or "x"
            yield f"header Bearer = {label}", call


def call_form(call: Call) -> bool:
    return call.form


def _rows(store: Store) -> tuple[int, ...]:
    with store.read() as conn:
        return tuple(
            int(conn.execute(select(func.count()).select_from(table)).scalar_one())
            for table in (credentials, events, resources, hotspot_sessions)
        )


@pytest.fixture(scope="module")
def served(
    databases: DatabaseFactory, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[World, Path]]:
    url = databases.new_url()
    log = Path(tmp_path_factory.mktemp("hostile")) / "server.log"
    port = _free_port()
    process = start_server(
        url,
        port,
        log,
        log_level="INFO",
        auth_failures_per_caller="0",
        auth_failures_per_account="0",
        auth_failures_per_address="0",
    )
    http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        world = _build_world(url, http)
        try:
            yield world, log
        finally:
            world.store.dispose()
    finally:
        http.close()
        process.terminate()
        process.wait(30)


def test_every_operation_has_a_case() -> None:
    """A new operation must be given a valid request here, so that its parameters are probed."""
    assert set(_operations()) == set(CASES)


def test_every_parameter_refuses_hostile_values(served: tuple[World, Path]) -> None:
    world, log = served
    logged_before = log.stat().st_size
    spec = _openapi()
    refused = accepted = 0
    for operation_id, (_method, template, op) in sorted(_operations().items()):
        case = CASES[operation_id]
        must_refuse = {label for label, _, refuse in PROBES if refuse}
        for described, call in _variants(world, case, op, template, spec):
            before = _rows(world.store)
            response = _send(world, call)
            where = f"{operation_id}: {described}: {response.status_code} {response.text[:300]}"
            assert response.status_code < 500, where
            assert response.headers.get("request-id"), where
            if response.status_code >= 400:
                refused += 1
                case.shape(response)
                assert "Traceback" not in response.text, where
                assert _rows(world.store) == before, where
            else:
                accepted += 1
                label = described.rsplit(" = ", 1)[1]
                assert label not in must_refuse, where
    with open(log, "rb") as written:
        written.seek(logged_before)
        text = written.read().decode("utf-8", errors="replace")
    assert MARK not in text
    assert '"unexpected_error"' not in text
    assert "Traceback" not in text
    record_figures(
        "test_every_parameter_refuses_hostile_values",
        backend=world.store.dialect,
        refused=refused,
        accepted=accepted,
    )


_BOOM_POSTGRESQL = (
    "CREATE FUNCTION hostile_boom() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'hostile test fault'; END $$",
    "CREATE TRIGGER hostile_boom BEFORE INSERT ON hotspot_sessions FOR EACH ROW "
    "WHEN (NEW.device_id LIKE 'BOOM%') EXECUTE FUNCTION hostile_boom()",
)
_BOOM_SQLITE = (
    "CREATE TRIGGER hostile_boom BEFORE INSERT ON hotspot_sessions "
    "WHEN NEW.device_id LIKE 'BOOM%' BEGIN SELECT RAISE(ABORT, 'hostile test fault'); END",
)


def test_a_database_fault_is_logged_without_the_statement_values(
    served: tuple[World, Path],
) -> None:
    """A database error inside a route (a trigger makes the hotspot session insert fail) is a
    500 in the dialect's shape; the server's log names the fault, never the statement's values
    (SQLAlchemy printed them: voucher codes, device ids)."""
    world, log = served
    secret = f"BOOM-{uuid.uuid4().hex}"
    code = f"FAULT-{uuid.uuid4().hex[:10]}"
    made = world.http.post(
        "/api/spaces/accesstokens",
        json={"BusinessId": world.business_id, "AccessCode": code, "MinutesIncluded": 60},
        auth=(world.email, world.password),
    )
    assert made.status_code == 200, made.text
    with world.store.write() as conn:
        for statement in _BOOM_SQLITE if world.store.dialect == "sqlite" else _BOOM_POSTGRESQL:
            conn.execute(text(statement))
    try:
        response = world.http.post(
            "/api/v1/hotspot/sessions",
            json={
                "BusinessId": world.business_id,
                "AccessCode": code,
                "DeviceId": secret,
            },
            headers={"Authorization": f"Bearer {world.access_token}"},
        )
    finally:
        with world.store.write() as conn:
            conn.execute(
                text(
                    "DROP TRIGGER hostile_boom"
                    + ("" if world.store.dialect == "sqlite" else " ON hotspot_sessions")
                )
            )
    assert response.status_code == 500, response.text
    _api_shape(response)
    deadline = time.monotonic() + 10
    while "unexpected_error" not in log.read_text(encoding="utf-8", errors="replace"):
        assert time.monotonic() < deadline, "the fault was not logged"
        time.sleep(0.05)
    logged = log.read_text(encoding="utf-8", errors="replace")
    assert secret not in logged
    assert code not in logged
    assert "hostile test fault" not in logged  # the database's own text is not logged either
