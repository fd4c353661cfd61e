from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyledger.cli.demo import provision_demo
from keyledger.kit.settings import Settings
from keyledger.store import Store
from tests.support import (
    POSTGRES_URL,
    DatabaseFactory,
    Deployment,
    NexudusTenant,
    Tenant,
    deploy,
    make_nexudus_tenant,
    make_tenant,
    need,
)

BACKENDS = ["sqlite", "postgresql"]

# The servers tests start serve no RADIUS unless a test asks for it on ports of its own
# (tests/radius): many servers at once on 1812/1813 would share their packets.
os.environ.setdefault("KEYLEDGER_RADIUS_AUTH_PORT", "0")
os.environ.setdefault("KEYLEDGER_RADIUS_ACCT_PORT", "0")


@pytest.fixture(scope="session", params=BACKENDS)
def databases(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DatabaseFactory]:
    backend = request.param
    if backend == "postgresql":
        need(POSTGRES_URL, "PostgreSQL tests need KEYLEDGER_TEST_POSTGRES_URL (see .ci/run)")
    factory = DatabaseFactory(backend, Path(tmp_path_factory.mktemp(backend)))
    yield factory
    factory.drop_all()


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> DatabaseFactory:
    return DatabaseFactory("sqlite", Path(tmp_path_factory.mktemp("sqlite-only")))


@pytest.fixture
def sqlite_store(sqlite_databases: DatabaseFactory) -> Iterator[Store]:
    """A fresh, migrated SQLite store, used through the core (no server)."""
    store = Store(Settings(database_url=sqlite_databases.new_url()))
    yield store
    store.dispose()


@pytest.fixture(scope="session")
def shared_deployment(databases: DatabaseFactory) -> Iterator[Deployment]:
    """One server per backend for tests that isolate themselves with a tenant of their own."""
    deployment = deploy(databases.new_url())
    yield deployment
    deployment.close()


@pytest.fixture
def tenant(shared_deployment: Deployment) -> Tenant:
    return make_tenant(shared_deployment)


@pytest.fixture
def demo(databases: DatabaseFactory) -> Iterator[Deployment]:
    """A fresh store with the demo records, and a server on it."""
    deployment = deploy(databases.new_url())
    provision_demo(deployment.store)
    yield deployment
    deployment.close()


@pytest.fixture
def space(shared_deployment: Deployment) -> NexudusTenant:
    """A Nexudus business with a user holding every access-token role."""
    return make_nexudus_tenant(shared_deployment)
