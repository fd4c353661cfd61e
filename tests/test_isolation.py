"""Isolation matrix, generated over every operation of every dialect: a caller of other properties
(an AccessToken, a portfolio token, a Nexudus user by Basic or by bearer token) asking about a
record of property B gets exactly the answer it gets for a record that does not exist, sees none of
B's records in lists or counts, and changes nothing of B's."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from keyledger.kit.settings import Settings
from keyledger.store.schema import credentials, events, hotspot_sessions, properties, resources
from keyledger.web.app import create_app
from tests.support import (
    MEWS_PATH,
    DatabaseFactory,
    Deployment,
    Tenant,
    add_user_to,
    deploy,
    make_tenant,
    token_parameters,
)

#: Operations that hold no property's records: nothing to isolate.
WITHOUT_RECORDS = {
    "ops_healthz",
    "ops_readyz",
    "ops_metrics",
    "nexudus_token",  # issues tokens for the caller's own user only
    "nexudus_accesstokens_commands",  # the fixed list of command definitions
}


@dataclass
class Owner:
    """Property B and one record of each kind in it."""

    tenant: Tenant
    token_id: str
    service_order: str
    voucher_id: int
    voucher_code: str
    room: str
    session: str


@dataclass
class Caller:
    name: str
    http: httpx.Client
    mews: dict[str, str] | None  # Mews body credentials
    bearer: str | None  # /api/v1 AccessToken
    nexudus: dict[str, str] | None  # headers for the Nexudus dialect
    enterprise: str
    business: int
    more_enterprises: list[str] = field(default_factory=list)  # a portfolio's other ones


@dataclass(frozen=True)
class Ids:
    token: str
    service_order: str
    voucher: int
    code: str
    room: str
    session: str
    enterprise: str
    business: int


Probe = Callable[[Caller, Ids], httpx.Response]


def _mews(op: str, **body: Any) -> Probe:
    def probe(c: Caller, ids: Ids) -> httpx.Response:
        if c.mews is None:
            pytest.skip("not a Mews caller")
        filled = json.loads(
            json.dumps(body)
            .replace("TOKEN", ids.token)
            .replace("SO", ids.service_order)
            .replace("ENT", ids.enterprise)
        )
        for item in filled.get("ResourceAccessTokenParameters", []):
            item["Value"] = f"{uuid.uuid4().int % 10**8:08d}#"  # never a collision of our own
        return c.http.post(f"{MEWS_PATH}/{op}", json={**c.mews, **filled})

    return probe


def _nexudus(method: str, path: str, body: dict[str, Any] | None = None) -> Probe:
    def probe(c: Caller, ids: Ids) -> httpx.Response:
        if c.nexudus is None:
            pytest.skip("not a Nexudus caller")
        filled = path.replace("VID", str(ids.voucher)).replace("CODE", ids.code)
        payload = None
        if body is not None:
            payload = json.loads(
                json.dumps(body)
                .replace('"VID"', str(ids.voucher))
                .replace('"BIZ"', str(ids.business))
            )
        return c.http.request(method, filled, json=payload, headers=c.nexudus)

    return probe


def _v1(method: str, path: str, body: dict[str, Any] | None = None) -> Probe:
    def probe(c: Caller, ids: Ids) -> httpx.Response:
        if c.bearer is None:
            pytest.skip("not an /api/v1 caller")
        filled = (
            path.replace("ROOM", ids.room)
            .replace("SESSION", ids.session)
            .replace("TOKEN", ids.token)
        )
        payload = None
        if body is not None:
            payload = json.loads(
                json.dumps(body)
                .replace("ROOM", ids.room)
                .replace("CODE", ids.code)
                .replace('"BIZ"', str(ids.business))
                .replace("OWN", c.enterprise)
            )
        return c.http.request(
            method, filled, json=payload, headers={"Authorization": f"Bearer {c.bearer}"}
        )

    return probe


MATRIX: dict[str, list[Probe]] = {
    "mews_resourceAccessTokens_getAll": [
        _mews("getAll", ResourceAccessTokenIds=["TOKEN"], Limitation={"Count": 10}),
        _mews("getAll", ServiceOrderIds=["SO"], Limitation={"Count": 10}),
        _mews("getAll", ServiceOrderIds=["SO"], EnterpriseIds=["ENT"], Limitation={"Count": 10}),
    ],
    "mews_resourceAccessTokens_add": [
        _mews("add", EnterpriseId="ENT", ResourceAccessTokenParameters=[token_parameters()]),
        _mews(
            "add",
            ResourceAccessTokenParameters=[
                {**token_parameters(value="8642#"), "ServiceOrderId": "SO"}
            ],
        ),
    ],
    "mews_resourceAccessTokens_update": [
        _mews(
            "update",
            ResourceAccessTokenUpdates=[
                {"ResourceAccessTokenId": "TOKEN", "Value": {"Value": "9753#"}}
            ],
        )
    ],
    "mews_resourceAccessTokens_delete": [_mews("delete", Ids=["TOKEN"])],
    "nexudus_accesstokens_list": [
        _nexudus("GET", "/api/spaces/accesstokens?AccessToken_Id=VID"),
        _nexudus("GET", "/api/spaces/accesstokens?AccessToken_AccessCode=CODE"),
    ],
    "nexudus_accesstokens_get": [_nexudus("GET", "/api/spaces/accesstokens/VID")],
    "nexudus_accesstokens_replace": [
        _nexudus(
            "PUT",
            "/api/spaces/accesstokens",
            {"Id": "VID", "BusinessId": "BIZ", "AccessCode": "Z1"},
        )
    ],
    "nexudus_accesstokens_create": [
        _nexudus(
            "POST",
            "/api/spaces/accesstokens",
            {"BusinessId": "BIZ", "AccessCode": "Z2", "MinutesIncluded": 5},
        )
    ],
    "nexudus_accesstokens_delete": [_nexudus("DELETE", "/api/spaces/accesstokens/VID")],
    "nexudus_accesstokens_runcommand": [
        _nexudus(
            "POST",
            "/api/spaces/accesstokens/runcommand",
            {"Key": "ADD_MINUTES", "Ids": ["VID"], "Parameters": [{"Name": "Minutes", "Value": 5}]},
        )
    ],
    "v1_resources_list": [_v1("GET", "/api/v1/resources")],
    "v1_resources_get": [_v1("GET", "/api/v1/resources/ROOM")],
    "v1_resources_delete": [_v1("DELETE", "/api/v1/resources/ROOM")],
    "v1_access_check": [
        _v1(
            "POST", "/api/v1/access/check", {"ResourceId": "ROOM", "Type": "PinCode", "Value": "1#"}
        )
    ],
    "v1_hotspot_session_start": [
        _v1(
            "POST",
            "/api/v1/hotspot/sessions",
            {"BusinessId": "BIZ", "AccessCode": "CODE", "DeviceId": "d"},
        )
    ],
    "v1_hotspot_session_usage": [
        _v1("POST", "/api/v1/hotspot/sessions/SESSION/usage", {"ElapsedSeconds": 60})
    ],
    "v1_hotspot_session_end": [
        _v1("POST", "/api/v1/hotspot/sessions/SESSION/end", {"ElapsedSeconds": 60})
    ],
    "v1_events_list": [
        _v1("GET", "/api/v1/events?ResourceId=ROOM"),
        _v1("GET", "/api/v1/events?CredentialId=TOKEN"),
    ],
    # Last: it creates a resource of the caller's own with the foreign uid (allowed, and no
    # leak), which later probes of that uid would then find.
    "v1_resources_put": [
        _v1(
            "PUT",
            "/api/v1/resources/ROOM",
            {"EnterpriseId": "OWN", "Kind": "Building", "Name": "X"},
        )
    ],
}


def test_the_matrix_covers_every_operation() -> None:
    document = create_app(Settings(database_url="sqlite://")).openapi()
    operations = {
        operation["operationId"]
        for methods in document["paths"].values()
        for operation in methods.values()
    }
    assert operations - WITHOUT_RECORDS == set(MATRIX)


def _owner(deployment: Deployment) -> Owner:
    tenant = make_tenant(deployment)
    bearer = {"Authorization": f"Bearer {tenant.access_token}"}
    building, room = str(uuid.uuid4()), str(uuid.uuid4())
    for uid, kind, parent in ((building, "Building", None), (room, "Room", building)):
        put = tenant.http.put(
            f"/api/v1/resources/{uid}",
            json={"Kind": kind, "Name": kind, "ParentId": parent},
            headers=bearer,
        )
        assert put.status_code == 200, put.text
    service_order = str(uuid.uuid4())
    added = tenant.mews(
        "add",
        ResourceAccessTokenParameters=[
            token_parameters(service_order=uuid.UUID(service_order), ResourceId=room)
        ],
    )
    assert added.status_code == 200, added.text
    email, password = add_user_to(deployment, [tenant.business_id])
    code = f"B{uuid.uuid4().hex[:8]}"
    created = deployment.http.post(
        "/api/spaces/accesstokens",
        json={"BusinessId": tenant.business_id, "AccessCode": code, "MinutesIncluded": 500},
        auth=(email, password),
    )
    assert created.status_code == 200, created.text
    session = deployment.http.post(
        "/api/v1/hotspot/sessions",
        json={"BusinessId": tenant.business_id, "AccessCode": code, "DeviceId": "owner"},
        headers=bearer,
    )
    assert session.json()["Granted"] is True, session.text
    return Owner(
        tenant=tenant,
        token_id=added.json()["ResourceAccessTokens"][0]["Id"],
        service_order=service_order,
        voucher_id=created.json()["Value"]["Id"],
        voucher_code=code,
        room=room,
        session=session.json()["SessionId"],
    )


def _callers(deployment: Deployment) -> list[Caller]:
    single = make_tenant(deployment)
    portfolio = make_tenant(deployment, properties=2)
    email, password = add_user_to(deployment, [single.business_id])
    grant = deployment.http.post(
        "/api/token", data={"grant_type": "password", "username": email, "password": password}
    )
    access = grant.json()["access_token"]
    basic = httpx.BasicAuth(email, password)
    request = httpx.Request("GET", "/")
    basic_header = next(basic.auth_flow(request)).headers["Authorization"]
    return [
        Caller(
            "AccessToken",
            deployment.http,
            single.credentials,
            single.access_token,
            None,
            str(single.enterprise_id),
            single.business_id,
        ),
        Caller(
            "portfolio token",
            deployment.http,
            portfolio.credentials,
            portfolio.access_token,
            None,
            str(portfolio.enterprise_id),
            portfolio.business_id,
            [str(e) for e in portfolio.extra_enterprises],
        ),
        Caller(
            "Nexudus Basic",
            deployment.http,
            None,
            None,
            {"Authorization": basic_header},
            str(single.enterprise_id),
            single.business_id,
        ),
        Caller(
            "Nexudus bearer",
            deployment.http,
            None,
            None,
            {"Authorization": f"Bearer {access}"},
            str(single.enterprise_id),
            single.business_id,
        ),
    ]


def _records_of(deployment: Deployment, owner: Owner) -> list[Any]:
    enterprise = owner.tenant.enterprise_id
    with deployment.store.read() as conn:
        prop = conn.execute(
            select(properties.c.id).where(properties.c.enterprise_id == enterprise)
        ).scalar_one()
        rows: list[Any] = []
        for table in (credentials, resources):
            rows += [
                tuple(r) for r in conn.execute(select(table).where(table.c.property_id == prop))
            ]
        rows += [tuple(r) for r in conn.execute(select(hotspot_sessions))]
    return sorted(rows, key=repr)


def _normalised(response: httpx.Response, ids: Ids) -> tuple[int, Any]:
    """The answer with the asked-for ids (and the Request-Id) blanked out."""
    text = re.sub(r'"RequestId":"[^"]*"', '"RequestId":""', response.text)
    values = [ids.token, ids.service_order, ids.code, ids.room, ids.session, ids.enterprise]
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, "<id>")
    for number in (ids.voucher, ids.business):
        text = re.sub(rf"\b{number}\b", "<n>", text)
    # What the server makes anew for each call (ids, values and times of records created in the
    # caller's own property) differs between any two calls: blank it too.
    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "<uuid>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", "<time>", text)
    text = re.sub(r'"Value":"\d+#"', '"Value":"<value>"', text)
    text = re.sub(r'"Id":\d+', '"Id":<n>', text)
    return response.status_code, text


@pytest.fixture
def world(databases: DatabaseFactory) -> Iterator[tuple[Deployment, Owner, list[Caller]]]:
    deployment = deploy(databases.new_url(), nexudus_rate_limit=0, mews_rate_limit=0)
    try:
        yield deployment, _owner(deployment), _callers(deployment)
    finally:
        deployment.close()


def test_no_caller_learns_or_touches_anything_of_another_property(
    world: tuple[Deployment, Owner, list[Caller]],
) -> None:
    deployment, owner, callers = world
    before = _records_of(deployment, owner)
    foreign = Ids(
        owner.token_id,
        owner.service_order,
        owner.voucher_id,
        owner.voucher_code,
        owner.room,
        owner.session,
        str(owner.tenant.enterprise_id),
        owner.tenant.business_id,
    )
    checked = 0
    for operation, probes in MATRIX.items():
        for probe in probes:
            for caller in callers:
                missing = Ids(
                    str(uuid.uuid4()),
                    str(uuid.uuid4()),
                    987_654_321,
                    "NOPE0000",
                    str(uuid.uuid4()),
                    str(uuid.uuid4()),
                    str(uuid.uuid4()),
                    987_654_321,
                )
                try:
                    on_foreign = probe(caller, foreign)
                    on_missing = probe(caller, missing)
                except pytest.skip.Exception:
                    continue
                checked += 1
                assert on_foreign.status_code < 500, (operation, caller.name, on_foreign.text)
                assert _normalised(on_foreign, foreign) == _normalised(on_missing, missing), (
                    operation,
                    caller.name,
                    on_foreign.text,
                    on_missing.text,
                )
                assert _records_of(deployment, owner) == before, (operation, caller.name)
    assert checked >= 40


# Same ids in two properties (issue 12). Resources have client-chosen ids in /api/v1, so property
# B can hold a resource with the very uid A's room has; credential ids (Mews ``Id``) and session
# ids are made by the server and unique across properties (a unique index each), so they cannot
# be shared: B can only name A's, which the matrix above covers.


def _bearer(tenant: Tenant) -> dict[str, str]:
    return {"Authorization": f"Bearer {tenant.access_token}"}


def _put(tenant: Tenant, uid: str, kind: str, enterprise: uuid.UUID | None = None) -> None:
    body: dict[str, Any] = {"Kind": kind, "Name": kind}
    if enterprise is not None:
        body["EnterpriseId"] = str(enterprise)
    put = tenant.http.put(f"/api/v1/resources/{uid}", json=body, headers=_bearer(tenant))
    assert put.status_code == 200, put.text


def _pin(tenant: Tenant, room: str, enterprise: uuid.UUID | None = None) -> str:
    value = f"{uuid.uuid4().int % 10**8:08d}#"
    extra: dict[str, Any] = {} if enterprise is None else {"EnterpriseId": str(enterprise)}
    added = tenant.mews(
        "add",
        **extra,
        ResourceAccessTokenParameters=[
            token_parameters(
                value=value,
                start="2020-01-01T00:00:00Z",
                end="2090-01-01T00:00:00Z",
                ResourceId=room,
            )
        ],
    )
    assert added.status_code == 200, added.text
    return value


def _check(
    tenant: Tenant, room: str, value: str, enterprise: uuid.UUID | None = None
) -> httpx.Response:
    body: dict[str, Any] = {"ResourceId": room, "Type": "PinCode", "Value": value}
    if enterprise is not None:
        body["EnterpriseId"] = str(enterprise)
    return tenant.http.post("/api/v1/access/check", json=body, headers=_bearer(tenant))


def _events_at(tenant: Tenant, room: str) -> list[tuple[str, str | None, str]]:
    listed = tenant.http.get(
        "/api/v1/events", params={"ResourceId": room, "Limit": 1000}, headers=_bearer(tenant)
    )
    assert listed.status_code == 200, listed.text
    return [(e["Kind"], e["Outcome"], e["EnterpriseId"]) for e in listed.json()["Events"]]


@pytest.fixture
def pair(databases: DatabaseFactory) -> Iterator[Deployment]:
    deployment = deploy(databases.new_url(), nexudus_rate_limit=0, mews_rate_limit=0)
    try:
        yield deployment
    finally:
        deployment.close()


def test_a_property_holding_the_same_reader_id_never_touches_the_other(pair: Deployment) -> None:
    a, b = make_tenant(pair), make_tenant(pair)
    room = str(uuid.uuid4())
    _put(a, room, "Room")
    guest = _pin(a, room)
    assert _check(a, room, guest).json()["Granted"] is True
    a_before = _events_at(a, room)
    # B names the same uid: its own room, made by PUT (B never sees A's).
    assert b.http.get(f"/api/v1/resources/{room}", headers=_bearer(b)).status_code == 404
    _put(b, room, "Room")
    b_guest = _pin(b, room)
    refused = [_check(b, room, f"{n}#").json()["Reason"] for n in range(12)]
    assert refused[:10] == ["UnknownCredential"] * 10 and refused[-1] == "Throttled"
    assert _check(b, room, b_guest).json()["Reason"] == "Throttled"  # B's reader is locked
    # A's reader: not locked, A's guest let in, B's guest unknown there, A's log untouched by B.
    assert _check(a, room, guest).json()["Granted"] is True
    assert _check(a, room, b_guest).json()["Reason"] == "UnknownCredential"
    assert _check(b, room, guest).json()["Reason"] == "Throttled"  # never A's decision
    a_after = _events_at(a, room)
    assert a_after[2:] == a_before
    assert [kind for kind, _, _ in a_after] == ["access.checked"] * 3 + ["resource.saved"]
    assert {enterprise for _, _, enterprise in a_after} == {str(a.enterprise_id)}
    b_events = _events_at(b, room)
    assert ("reader.throttled", "Throttled", str(b.enterprise_id)) in b_events
    assert {enterprise for _, _, enterprise in b_events} == {str(b.enterprise_id)}
    # B deletes its room: A's stays, and A's answers do not change.
    assert b.http.delete(f"/api/v1/resources/{room}", headers=_bearer(b)).status_code == 204
    assert a.http.get(f"/api/v1/resources/{room}", headers=_bearer(a)).status_code == 200
    assert _check(a, room, guest).json()["Granted"] is True
    assert _check(b, room, b_guest).status_code == 404


def test_a_portfolio_token_never_decides_across_its_properties(pair: Deployment) -> None:
    portfolio = make_tenant(pair, properties=2)
    first, second = portfolio.enterprise_id, portfolio.extra_enterprises[0]
    room = str(uuid.uuid4())
    for enterprise in (first, second):
        _put(portfolio, room, "Room", enterprise)
    first_pin, second_pin = _pin(portfolio, room, first), _pin(portfolio, room, second)

    def names_enterprise(response: httpx.Response) -> None:
        assert response.status_code == 400, response.text
        assert "EnterpriseId" in response.json()["Message"], response.text

    # Every operation on the shared uid asks which property; none picks one.
    names_enterprise(_check(portfolio, room, first_pin))
    names_enterprise(portfolio.http.get(f"/api/v1/resources/{room}", headers=_bearer(portfolio)))
    names_enterprise(portfolio.http.delete(f"/api/v1/resources/{room}", headers=_bearer(portfolio)))
    names_enterprise(
        portfolio.http.put(
            f"/api/v1/resources/{room}",
            json={"Kind": "Room", "Name": "X"},
            headers=_bearer(portfolio),
        )
    )
    # Named, each property decides with its own credentials only, and files its own events.
    assert _check(portfolio, room, first_pin, first).json()["Granted"] is True
    assert _check(portfolio, room, second_pin, first).json()["Reason"] == "UnknownCredential"
    assert _check(portfolio, room, second_pin, second).json()["Granted"] is True
    assert _check(portfolio, room, first_pin, second).json()["Reason"] == "UnknownCredential"
    checked = [
        (outcome, e) for kind, outcome, e in _events_at(portfolio, room) if kind == "access.checked"
    ]
    assert sorted(checked) == sorted(
        [
            ("Granted", str(first)),
            ("UnknownCredential", str(first)),
            ("Granted", str(second)),
            ("UnknownCredential", str(second)),
        ]
    )
    # Locking the second property's reader leaves the first's open.
    for n in range(11):
        _check(portfolio, room, f"{n}#", second)
    assert _check(portfolio, room, second_pin, second).json()["Reason"] == "Throttled"
    assert _check(portfolio, room, first_pin, first).json()["Granted"] is True
    throttled = [e for kind, _, e in _events_at(portfolio, room) if kind == "reader.throttled"]
    assert throttled == [str(second)]
    # A delete naming one property removes only that property's room.
    deleted = portfolio.http.delete(
        f"/api/v1/resources/{room}",
        params={"EnterpriseId": str(second)},
        headers=_bearer(portfolio),
    )
    assert deleted.status_code == 204, deleted.text
    got = portfolio.http.get(f"/api/v1/resources/{room}", headers=_bearer(portfolio))
    assert got.status_code == 200 and got.json()["EnterpriseId"] == str(first)
    assert _check(portfolio, room, first_pin).json()["Granted"] is True  # no longer ambiguous


def _events_of(deployment: Deployment, owner: Owner) -> list[Any]:
    with deployment.store.read() as conn:
        prop = conn.execute(
            select(properties.c.id).where(properties.c.enterprise_id == owner.tenant.enterprise_id)
        ).scalar_one()
        return [tuple(r) for r in conn.execute(select(events).where(events.c.property_id == prop))]


def test_callers_holding_the_same_resource_id_change_nothing_of_the_owner(
    world: tuple[Deployment, Owner, list[Caller]],
) -> None:
    """The matrix again, with every caller holding a resource of the owner's room uid first
    (and portfolio tokens one in each property): every operation, three times over, and the
    owner's records, event log and reader stay as they were."""
    deployment, owner, callers = world
    before, logged = _records_of(deployment, owner), _events_of(deployment, owner)
    ids = Ids(
        owner.token_id,
        owner.service_order,
        owner.voucher_id,
        owner.voucher_code,
        owner.room,
        owner.session,
        str(owner.tenant.enterprise_id),
        owner.tenant.business_id,
    )
    for caller in callers:
        if caller.bearer is None:
            continue
        headers = {"Authorization": f"Bearer {caller.bearer}"}
        for enterprise in [caller.enterprise, *caller.more_enterprises]:
            put = caller.http.put(
                f"/api/v1/resources/{owner.room}",
                json={"EnterpriseId": enterprise, "Kind": "Room", "Name": "Same id"},
                headers=headers,
            )
            assert put.status_code == 200, put.text
    checked = 0
    for _ in range(2):
        for operation, probes in MATRIX.items():
            for probe in probes:
                for caller in callers:
                    try:
                        answer = probe(caller, ids)
                    except pytest.skip.Exception:
                        continue
                    checked += 1
                    assert answer.status_code < 500, (operation, caller.name, answer.text)
    assert checked >= 80
    for caller in callers:  # and more refusals at the uid than lock a reader
        if caller.bearer is not None:
            for n in range(11):
                caller.http.post(
                    "/api/v1/access/check",
                    json={
                        **({"EnterpriseId": caller.enterprise} if caller.more_enterprises else {}),
                        "ResourceId": owner.room,
                        "Type": "PinCode",
                        "Value": f"{n}#",
                    },
                    headers={"Authorization": f"Bearer {caller.bearer}"},
                )
    assert _records_of(deployment, owner) == before
    assert _events_of(deployment, owner) == logged
    # The owner's reader is not locked: an unknown code there is still just unknown.
    owner_check = owner.tenant.http.post(
        "/api/v1/access/check",
        json={"ResourceId": owner.room, "Type": "PinCode", "Value": "13579#"},
        headers={"Authorization": f"Bearer {owner.tenant.access_token}"},
    )
    assert owner_check.json()["Reason"] == "UnknownCredential", owner_check.text
