"""Test helpers: real uvicorn servers on loopback, fresh databases, tenants."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import create_engine, text

from keyledger.domain.callers.integrations import add_access_token, add_integration
from keyledger.domain.credentials import voucher_repository
from keyledger.domain.credentials.collisions import reach_check
from keyledger.domain.credentials.models import (
    Credential,
    CredentialKind,
    Permissions,
    ReservationTokenDraft,
    TokenType,
)
from keyledger.domain.credentials.reservations import add_reservation_tokens
from keyledger.domain.events.models import Actor
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.properties.service import add_property
from keyledger.domain.resources.models import ResourceDraft, ResourceKind
from keyledger.domain.resources.service import save_resources
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade
from keyledger.web.app import create_app

REPO = Path(__file__).resolve().parent.parent
POSTGRES_URL = os.environ.get("KEYLEDGER_TEST_POSTGRES_URL")
REDIS_URL = os.environ.get("KEYLEDGER_TEST_REDIS_URL")
REQUIRE_SERVICES = os.environ.get("KEYLEDGER_TEST_REQUIRE_SERVICES") == "1"
SHARED = Path(os.environ.get("KEYLEDGER_SHARED_DIR", REPO.parent / "shared"))
#: The long reliability tests run at size 1 in CI; docs/reliability.md gives the full-size command.
SCALE = max(1, int(os.environ.get("KEYLEDGER_TEST_SCALE", "1")))


def scaled(size: int) -> int:
    """A test's size (examples, rounds, crash cycles) at ``KEYLEDGER_TEST_SCALE``."""
    return size * SCALE


def record_figures(test: str, **figures: object) -> None:
    """Append what a long test measured to ``KEYLEDGER_TEST_FIGURES`` (JSON lines), if set: the
    figures docs/reliability.md quotes."""
    path = os.environ.get("KEYLEDGER_TEST_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"test": test, "scale": SCALE, **figures}) + "\n")


MEWS_PATH = "/api/connector/v1/resourceAccessTokens"


def free_port() -> int:
    """A TCP port of loopback that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def need(condition: object, reason: str) -> None:
    """Skip when a service or file is absent, unless CI demands it (then fail)."""
    if condition:
        return
    if REQUIRE_SERVICES:
        pytest.fail(f"required by KEYLEDGER_TEST_REQUIRE_SERVICES=1: {reason}")
    pytest.skip(reason)


def voucher_row(*, property_id: int, code: str, when: datetime, **columns: Any) -> dict[str, Any]:
    """A ``credentials`` row of a live voucher with ``code``, made at ``when``, for tests that
    insert rows themselves (at a size the services would take long to make); ``columns``
    override or add (e.g. ``deleted_utc``, ``minutes_left``)."""
    return {
        "kind": CredentialKind.VOUCHER.value,
        "property_id": property_id,
        "value": code,
        "perm_bed": False,
        "perm_room": False,
        "perm_floor": False,
        "perm_building": False,
        "created_utc": when,
        "updated_utc": when,
        "created_by": "System",
        "updated_by": "System",
        **voucher_repository.key_columns(code, None),
        **columns,
    }


def shared_file(relative: str) -> Path:
    path = SHARED / relative
    need(path.exists(), f"{path} not found: put the project's shared/ beside the clone")
    return path


class DatabaseFactory:
    """Fresh, migrated databases: SQLite files copied from a template, PostgreSQL databases
    created from a template database."""

    def __init__(self, backend: str, workdir: Path) -> None:
        self.backend = backend
        self.workdir = workdir
        self.created: list[str] = []
        if backend == "sqlite":
            self.template = workdir / "template.db"
            self._migrate(f"sqlite:///{self.template}")
        else:
            assert POSTGRES_URL is not None
            self.prefix = f"keyledger_test_{uuid.uuid4().hex[:10]}"
            self.template_name = f"{self.prefix}_template"
            self._admin(f'CREATE DATABASE "{self.template_name}"')
            self.created.append(self.template_name)
            self._migrate(self._url(self.template_name))

    def _url(self, name: str) -> str:
        assert POSTGRES_URL is not None
        base = POSTGRES_URL.rsplit("/", 1)[0]
        return f"{base}/{name}"

    def _admin(self, statement: str) -> None:
        assert POSTGRES_URL is not None
        engine = create_engine(
            Settings(database_url=POSTGRES_URL).database_url, isolation_level="AUTOCOMMIT"
        )
        try:
            with engine.connect() as conn:
                conn.execute(text(statement))
        finally:
            engine.dispose()

    def _migrate(self, url: str) -> None:
        store = Store(Settings(database_url=url))
        upgrade(store.engine)
        store.dispose()

    def new_url(self) -> str:
        if self.backend == "sqlite":
            target = self.workdir / f"db-{uuid.uuid4().hex[:10]}.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        name = f"{self.prefix}_{len(self.created)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template_name}"')
        self.created.append(name)
        return self._url(name)

    def drop_all(self) -> None:
        if self.backend == "postgresql":
            for name in reversed(self.created):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: The suite runs PostgreSQL with door credential values sealed and SQLite with them in clear, so
#: every test of both databases covers both forms (tests/kit/test_sealing.py tests each form on
#: each database).
TEST_ENCRYPTION_KEY = "a2V5bGVkZ2VyLXRlc3Qtc3VpdGUtc2VhbGluZy1rZXk="


def sealing_for(database_url: str) -> dict[str, str]:
    """The ``encryption_key`` setting the suite uses for a database."""
    return {} if database_url.startswith("sqlite") else {"encryption_key": TEST_ENCRYPTION_KEY}


def settings_for(database_url: str, **overrides: Any) -> Settings:
    # Every test server is reached from 127.0.0.1: a per-address limit on failed authentication
    # would couple unrelated tests. tests/api/test_auth_throttle.py sets its own.
    overrides.setdefault("auth_failures_per_address", 0)
    overrides = {**sealing_for(database_url), **overrides}
    return Settings(database_url=database_url, log_level="WARNING", **overrides)


class LiveServer:
    """A real uvicorn server on a loopback port, in a thread of the test process."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            proxy_headers=False,
            http="keyledger.web.serving:GuardedHttpToolsProtocol",  # as `keyledger serve`
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )
        self.http = httpx.Client(base_url=self.url, timeout=30)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.http.close()
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@dataclass
class Deployment:
    """A store and a live server on it."""

    store: Store
    server: LiveServer
    settings: Settings

    @property
    def http(self) -> httpx.Client:
        return self.server.http

    def close(self) -> None:
        self.server.stop()
        self.store.dispose()


def deploy(database_url: str, **overrides: Any) -> Deployment:
    settings = settings_for(database_url, **overrides)
    store = Store(settings)
    server = LiveServer(create_app(settings, store=store)).start()
    return Deployment(store=store, server=server, settings=settings)


@contextmanager
def two_instances_sharing_redis(
    database_url: str, **overrides: Any
) -> Iterator[tuple[Deployment, Deployment]]:
    """Two servers on one store and one Redis (a key prefix of their own), as two instances."""
    need(REDIS_URL, "Redis tests need KEYLEDGER_TEST_REDIS_URL (see .ci/run)")
    shared = {
        "redis_url": REDIS_URL,
        "redis_key_prefix": f"keyledger-test-{uuid.uuid4().hex}",
        # These tests count through Redis: a reply slower than the 50 ms default on a loaded
        # machine would be taken for an outage and counted per worker (by design:
        # tests/ops/test_slow_clients.py), which is not what they test.
        "redis_timeout_ms": 5000,
        **overrides,
    }
    first = deploy(database_url, **shared)
    second = deploy(database_url, **shared)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


@dataclass
class Tenant:
    """A property with an integration and an access token of its own, reached over HTTP."""

    http: httpx.Client
    client_token: str
    access_token: str
    enterprise_id: uuid.UUID
    business_id: int
    extra_enterprises: list[uuid.UUID] = field(default_factory=list)

    @property
    def credentials(self) -> dict[str, str]:
        return {
            "ClientToken": self.client_token,
            "AccessToken": self.access_token,
            "Client": "keyledger tests 1.0",
        }

    def mews(
        self, operation: str, headers: dict[str, str] | None = None, **body: Any
    ) -> httpx.Response:
        return self.http.post(
            f"{MEWS_PATH}/{operation}", json={**self.credentials, **body}, headers=headers
        )


def make_tenant(deployment: Deployment, *, properties: int = 1) -> Tenant:
    created = [
        add_property(deployment.store, name=f"Test property {uuid.uuid4().hex[:6]}")
        for _ in range(properties)
    ]
    integration = add_integration(deployment.store, name="tests")
    token = add_access_token(
        deployment.store,
        client_token=integration.secret,
        enterprise_ids=[p.enterprise_id for p in created],
    )
    return Tenant(
        http=deployment.http,
        client_token=integration.secret,
        access_token=token.secret,
        enterprise_id=created[0].enterprise_id,
        business_id=created[0].business_id,
        extra_enterprises=[p.enterprise_id for p in created[1:]],
    )


def token_parameters(
    *,
    service_order: uuid.UUID | None = None,
    value: str | None = None,
    start: str = "2030-01-01T14:00:00Z",
    end: str = "2030-01-05T10:00:00Z",
    token_type: str = "PinCode",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "ServiceOrderId": str(service_order or uuid.uuid4()),
        "Type": token_type,
        "Value": value or f"{uuid.uuid4().int % 10**8:08d}#",
        "ValidityStartUtc": start,
        "ValidityEndUtc": end,
        "Permissions": {"Bed": {"Value": False}, "Room": {"Value": True}},
        **extra,
    }


ALL_ROLES = (
    "AccessToken-List",
    "AccessToken-Read",
    "AccessToken-Create",
    "AccessToken-Edit",
    "AccessToken-Delete",
)
NEXUDUS_PATH = "/api/spaces/accesstokens"


@dataclass
class NexudusTenant:
    """A business with a user of its own, reached over HTTP with Basic credentials."""

    http: httpx.Client
    email: str
    password: str
    business_id: int
    enterprise_id: uuid.UUID

    @property
    def auth(self) -> tuple[str, str]:
        return (self.email, self.password)

    def get(self, path: str = "", **params: Any) -> httpx.Response:
        return self.http.get(f"{NEXUDUS_PATH}{path}", params=params, auth=self.auth)

    def create(self, **fields: Any) -> httpx.Response:
        body = {"BusinessId": self.business_id, "MinutesIncluded": 60, **fields}
        body.setdefault("AccessCode", uuid.uuid4().hex[:10])
        return self.http.post(NEXUDUS_PATH, json=body, auth=self.auth)

    def create_id(self, **fields: Any) -> int:
        response = self.create(**fields)
        assert response.status_code == 200, response.text
        return int(response.json()["Value"]["Id"])

    def put(self, **fields: Any) -> httpx.Response:
        return self.http.put(NEXUDUS_PATH, json=fields, auth=self.auth)

    def delete(self, voucher_id: int | str) -> httpx.Response:
        return self.http.delete(f"{NEXUDUS_PATH}/{voucher_id}", auth=self.auth)

    def command(self, key: str, ids: list[int] | None = None, **parameters: Any) -> httpx.Response:
        body = {
            "Key": key,
            "Ids": ids or [],
            "Parameters": [{"Name": n, "Value": v} for n, v in parameters.items()],
        }
        return self.http.post(f"{NEXUDUS_PATH}/runcommand", json=body, auth=self.auth)

    def as_user(self, email: str, password: str) -> NexudusTenant:
        return NexudusTenant(self.http, email, password, self.business_id, self.enterprise_id)


def add_user_to(
    deployment: Deployment, business_ids: list[int], roles: tuple[str, ...] = ALL_ROLES
) -> tuple[str, str]:
    from keyledger.domain.callers.users import add_user

    email, password = f"user-{uuid.uuid4().hex[:8]}@example.com", "a long password"
    add_user(
        deployment.store, email=email, password=password, business_ids=business_ids, roles=roles
    )
    return email, password


def make_nexudus_tenant(
    deployment: Deployment, roles: tuple[str, ...] = ALL_ROLES
) -> NexudusTenant:
    created = add_property(deployment.store, name=f"Space {uuid.uuid4().hex[:6]}")
    email, password = add_user_to(deployment, [created.business_id], roles)
    return NexudusTenant(
        http=deployment.http,
        email=email,
        password=password,
        business_id=created.business_id,
        enterprise_id=created.enterprise_id,
    )


def add_pins(
    store: Store, scope: Scope, windows: Sequence[tuple[datetime, datetime]]
) -> list[Credential]:
    """Room PIN tokens through the credential core, one per validity window, each with a fresh
    value and service order (so they never collide)."""
    return add_reservation_tokens(
        store,
        scope=scope,
        actor=Actor.system(),
        drafts=[
            ReservationTokenDraft(
                service_order_id=uuid.uuid4(),
                token_type=TokenType.PIN_CODE,
                value=f"{uuid.uuid4().int % 10**10:010d}#",
                valid_from=valid_from,
                valid_to=valid_to,
                permissions=Permissions(room=True),
            )
            for valid_from, valid_to in windows
        ],
    )


def dump_database(url: str) -> str:
    """Everything a copy of the database shows: the SQL dump, and for SQLite the file itself
    (free pages included), as text."""
    if url.startswith("sqlite"):
        path = url.removeprefix("sqlite:///")
        with sqlite3.connect(path) as conn:
            conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            text = "\n".join(conn.iterdump())
        with open(path, "rb") as raw:  # the file itself too, free pages included
            return text + raw.read().decode("latin-1")
    need(shutil.which("pg_dump"), "pg_dump is needed for the PostgreSQL dump")
    return subprocess.run(
        ["pg_dump", "--data-only", url], capture_output=True, text=True, check=True
    ).stdout


# ---- Helpers shared by several test modules (never import one test module from another) ----


def assert_error(response: httpx.Response, status: int, message_start: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"Message", "RequestId", "Details"}
    assert body["Details"] is None
    assert body["RequestId"] == response.headers["Request-Id"]
    assert uuid.UUID(body["RequestId"])
    assert body["Message"].startswith(message_start), body["Message"]
    assert "Traceback" not in body["Message"]
    return body


WINDOW = {"StartUtc": "2030-01-01T00:00:00Z", "EndUtc": "2030-03-01T00:00:00Z"}


def add(tenant: Tenant, *items: dict[str, Any], **body: Any) -> list[dict[str, Any]]:
    from tests.mews_schema import assert_valid_mews_response  # imports this module

    response = tenant.mews("add", ResourceAccessTokenParameters=list(items), **body)
    assert response.status_code == 200, response.text
    assert_valid_mews_response("add", 200, response.json())
    tokens: list[dict[str, Any]] = response.json()["ResourceAccessTokens"]
    return tokens


def get_all(tenant: Tenant, **body: Any) -> list[dict[str, Any]]:
    body.setdefault("Limitation", {"Count": 1000})
    from tests.mews_schema import assert_valid_mews_response  # imports this module

    response = tenant.mews("getAll", **body)
    assert response.status_code == 200, response.text
    assert_valid_mews_response("getAll", 200, response.json())
    tokens: list[dict[str, Any]] = response.json()["ResourceAccessTokens"]
    return tokens


KEYLEDGER = [sys.executable, "-m", "keyledger"]


def run(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KEYLEDGER_DATABASE_URL": database_url}
    return subprocess.run(
        [*KEYLEDGER, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def ok(database_url: str, *args: str) -> dict[str, Any]:
    done = run(database_url, *args)
    assert done.returncode == 0, done.stderr
    payload: dict[str, Any] = json.loads(done.stdout)
    return payload


def v1(tenant: Tenant, method: str, path: str, **body: Any) -> httpx.Response:
    return tenant.http.request(
        method,
        f"/api/v1{path}",
        json=body or None,
        headers={"Authorization": f"Bearer {tenant.access_token}"},
    )


def put(
    tenant: Tenant, uid: uuid.UUID, kind: str, parent: uuid.UUID | None = None, **extra: Any
) -> httpx.Response:
    return v1(
        tenant,
        "PUT",
        f"/resources/{uid}",
        Kind=kind,
        Name=extra.pop("Name", f"{kind} {str(uid)[:4]}"),
        ParentId=None if parent is None else str(parent),
        **extra,
    )


def building(tenant: Tenant) -> dict[str, uuid.UUID]:
    tree = {name: uuid.uuid4() for name in ("building", "floor", "room", "bed", "other_room")}
    assert put(tenant, tree["building"], "Building").status_code == 200
    assert put(tenant, tree["floor"], "Floor", tree["building"]).status_code == 200
    assert put(tenant, tree["room"], "Room", tree["floor"]).status_code == 200
    assert put(tenant, tree["bed"], "Bed", tree["room"]).status_code == 200
    assert put(tenant, tree["other_room"], "Room", tree["floor"]).status_code == 200
    return tree


def check(
    tenant: Tenant,
    reader: uuid.UUID,
    value: str,
    at: str = "2030-01-02T12:00:00Z",
    token_type: str = "PinCode",
) -> dict[str, Any]:
    response = v1(
        tenant, "POST", "/access/check", ResourceId=str(reader), Type=token_type, Value=value, At=at
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def token(
    tenant: Tenant,
    value: str,
    resource: uuid.UUID | None,
    token_type: str = "PinCode",
    **flags: bool,
) -> str:
    permissions = {
        name: {"Value": flags.get(name.lower(), False)}
        for name in ("Bed", "Room", "Floor", "Building")
    }
    parameters = token_parameters(
        value=value,
        token_type=token_type,
        start="2030-01-01T00:00:00Z",
        end="2030-01-05T00:00:00Z",
        Permissions=permissions,
    )
    if resource is not None:
        parameters["ResourceId"] = str(resource)
    (made,) = add(tenant, parameters)
    return str(made["Id"])


@dataclass(frozen=True)
class Building:
    """A small resource tree: building > floor > rooms 1 and 2, bed A in room 1."""

    property: Property
    building: uuid.UUID
    floor: uuid.UUID
    room_1: uuid.UUID
    room_2: uuid.UUID
    bed_a: uuid.UUID


def add_building(store: Store, prop: Property) -> Building:
    """``Building`` in ``prop``, through the resource service."""
    tree = Building(prop, *(uuid.uuid4() for _ in range(5)))
    save_resources(
        store,
        actor=Actor.system(),
        batches={
            prop: [
                ResourceDraft(tree.building, None, ResourceKind.BUILDING, "Building"),
                ResourceDraft(tree.floor, tree.building, ResourceKind.FLOOR, "Floor"),
                ResourceDraft(tree.room_1, tree.floor, ResourceKind.ROOM, "Room 1"),
                ResourceDraft(tree.room_2, tree.floor, ResourceKind.ROOM, "Room 2"),
                ResourceDraft(tree.bed_a, tree.room_1, ResourceKind.BED, "Bed A"),
            ]
        },
        on_reach_change=reach_check(store.sealer),
    )
    return tree


ROOM_ONLY = Permissions(room=True)


def door_token(
    value: str,
    valid_from: datetime,
    valid_to: datetime,
    *,
    resource_id: uuid.UUID | None = None,
    permissions: Permissions = ROOM_ONLY,
) -> ReservationTokenDraft:
    """A PIN token's draft with a service order of its own."""
    return ReservationTokenDraft(
        service_order_id=uuid.uuid4(),
        token_type=TokenType.PIN_CODE,
        value=value,
        valid_from=valid_from,
        valid_to=valid_to,
        permissions=permissions,
        resource_id=resource_id,
    )


def add_door_tokens(
    store: Store, prop: Property, drafts: Sequence[ReservationTokenDraft]
) -> list[Credential]:
    """The tokens, through the credential service (in order)."""
    return add_reservation_tokens(store, scope=Scope((prop,)), actor=Actor.system(), drafts=drafts)


def readme_example(name: str) -> str:
    """The shell block after ``<!-- readme-example: NAME -->`` in the README."""
    readme = (REPO / "README.md").read_text()
    found = re.search(
        rf"<!-- readme-example: {re.escape(name)} -->\n```sh\n(.*?)\n```", readme, re.DOTALL
    )
    assert found, name
    return found.group(1)


def bench(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def flock_waiters(path: str | Path) -> int:
    """How many ``flock`` calls wait, blocked, for the file at ``path`` (Linux: /proc/locks;
    the writers' helper threads of ``WriteTurn.take_later`` block so)."""
    inode = os.stat(path).st_ino
    waiting = 0
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and fields[2] == "FLOCK":
            waiting += int(fields[6].rsplit(":", 1)[-1]) == inode
    return waiting
