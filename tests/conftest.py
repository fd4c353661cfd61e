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


def _group(item: pytest.Item) -> str:
    """A test module on one database (the module alone for tests of no database)."""
    callspec = getattr(item, "callspec", None)
    backend = callspec.params.get("databases") if callspec is not None else None
    module = item.nodeid.split("::", 1)[0]
    return f"{module}[{backend}]" if backend else module


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The units pytest-xdist hands to its workers (``--dist loadgroup``, pyproject.toml): a test
    module on one database. A module's servers (module-scoped fixtures) then start once per
    database, as in one process, and a module's SQLite half and PostgreSQL half can run side by
    side. In a worker the units are ordered so that the long ones (marked ``slow``) are handed out
    first and do not finish alone at the end; the others follow, larger ones first. Without
    xdist the mark is inert and the order is pytest's (which keeps each database's tests
    together)."""
    groups: dict[str, list[pytest.Item]] = {}
    for item in items:
        name = _group(item)
        item.add_marker(pytest.mark.xdist_group(name))
        groups.setdefault(name, []).append(item)
    if getattr(config, "workerinput", None) is None:
        return
    ordered = sorted(
        groups.values(),
        key=lambda group: (not any(i.get_closest_marker("slow") for i in group), -len(group)),
    )
    items[:] = [item for group in ordered for item in group]


@pytest.fixture(scope="session")
def _factories(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, DatabaseFactory]]:
    """Each database's factory, made once per session (per xdist worker) when a test first asks
    for it, and its databases dropped at the end. ``databases`` alternates between the backends
    as a worker takes one module's SQLite half, then another's PostgreSQL half: pytest ends a
    parametrized session fixture when its parameter changes, so the factory lives here."""
    made: dict[str, DatabaseFactory] = {}
    yield made
    for factory in made.values():
        factory.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def databases(
    request: pytest.FixtureRequest,
    _factories: dict[str, DatabaseFactory],
    tmp_path_factory: pytest.TempPathFactory,
) -> DatabaseFactory:
    backend = request.param
    if backend == "postgresql":
        need(POSTGRES_URL, "PostgreSQL tests need KEYLEDGER_TEST_POSTGRES_URL (see .ci/run)")
    if backend not in _factories:
        _factories[backend] = DatabaseFactory(backend, Path(tmp_path_factory.mktemp(backend)))
    return _factories[backend]


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
def _shared_deployments(_factories: dict[str, DatabaseFactory]) -> Iterator[dict[str, Deployment]]:
    """``shared_deployment``'s servers, kept for the session as ``_factories`` keeps the
    factories (and stopped before their databases are dropped)."""
    made: dict[str, Deployment] = {}
    yield made
    for deployment in made.values():
        deployment.close()


@pytest.fixture(scope="session")
def shared_deployment(
    databases: DatabaseFactory, _shared_deployments: dict[str, Deployment]
) -> Deployment:
    """One server per backend for tests that isolate themselves with a tenant of their own."""
    if databases.backend not in _shared_deployments:
        _shared_deployments[databases.backend] = deploy(databases.new_url())
    return _shared_deployments[databases.backend]


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
