"""Integrations (Mews connectors) and their access tokens: issuing, enabling, revoking and
authenticating them. Nexudus users are in ``users.py``."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.callers import repository
from keyledger.domain.callers.cache import CallerCache
from keyledger.domain.callers.models import MAX_SECRET_LENGTH, IntegrationCaller, IssuedSecret
from keyledger.domain.callers.permissions import (
    EVERY_PERMISSION,
    Permission,
    ordered,
    parse_permissions,
)
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.properties import repository as property_repository
from keyledger.domain.properties.models import Scope
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import Conflict, InvalidInput, Unauthenticated
from keyledger.kit.hashing import digests_match, new_api_token, secret_digest
from keyledger.store import Store


def add_integration(store: Store, *, name: str, client_token: str | None = None) -> IssuedSecret:
    """Register an integration; its ClientToken is returned once and stored as a digest."""
    name = name.strip()
    if not name or len(name) > 200:
        raise InvalidInput("An integration name has 1 to 200 characters.", subject="name")
    token = client_token or new_api_token()
    digest = secret_digest(token)
    with store.write() as conn:
        if repository.integration_by_digest(conn, digest) is not None:
            raise Conflict("That client token is registered already.", subject="client_token")
        now = utc_now()
        integration_id = repository.insert_integration(conn, name=name, digest=digest, now=now)
        events.append(
            conn,
            records.integration_created(integration_id=integration_id, name=name),
            actor=Actor.system(),
            now=now,
        )
    return IssuedSecret(id=integration_id, secret=token, name=name)


def import_integration(
    conn: Connection,
    *,
    name: str,
    client_token: str,
    access_token: str,
    property_ids: Sequence[int],
    permissions: Sequence[Permission],
    now: datetime,
) -> None:
    """An integration and one access token that existed before this store saw them (the
    demo's), kept where they exist already, in the caller's transaction and without an event.
    Only their digests are stored, as for every secret."""
    found = repository.integration_by_digest(conn, secret_digest(client_token))
    integration_id = (
        int(found.id)
        if found is not None
        else repository.insert_integration(
            conn, name=name, digest=secret_digest(client_token), now=now
        )
    )
    if repository.connection_by_digest(conn, secret_digest(access_token)) is None:
        repository.insert_connection(
            conn,
            integration_id=integration_id,
            digest=secret_digest(access_token),
            property_ids=list(property_ids),
            scopes=ordered(permissions),
            now=now,
        )


def set_integration_enabled(
    store: Store,
    *,
    enabled: bool,
    client_token: str | None = None,
    integration_id: int | None = None,
) -> int:
    with store.write() as conn:
        if client_token is not None:
            row = repository.integration_by_digest(conn, secret_digest(client_token))
            if row is None:
                raise InvalidInput("Unknown client token.", subject="client_token")
            integration_id = int(row.id)
        if integration_id is None or not repository.integration_exists(conn, integration_id):
            raise InvalidInput("Unknown integration.", subject="integration")
        now = utc_now()
        repository.set_integration_enabled(conn, integration_id, enabled=enabled, now=now)
        switched = records.integration_enabled if enabled else records.integration_disabled
        events.append(conn, switched(integration_id=integration_id), actor=Actor.system(), now=now)
        return integration_id


def add_access_token(
    store: Store,
    *,
    client_token: str,
    enterprise_ids: Sequence[UUID],
    access_token: str | None = None,
    scopes: Sequence[str] = (),
) -> IssuedSecret:
    """Connect an integration to one property, or several (a portfolio access token), with the
    scopes named (none named: every scope, callers/permissions.py)."""
    if not enterprise_ids:
        raise InvalidInput("Name at least one enterprise.", subject="enterprise")
    scope_names = ordered(parse_permissions(scopes))
    wanted = list(dict.fromkeys(enterprise_ids))
    token = access_token or new_api_token()
    digest = secret_digest(token)
    with store.write() as conn:
        integration = repository.integration_by_digest(conn, secret_digest(client_token))
        if integration is None:
            raise InvalidInput("Unknown client token.", subject="client_token")
        found = {p.enterprise_id: p for p in property_repository.by_enterprise_ids(conn, wanted)}
        missing = [str(e) for e in wanted if e not in found]
        if missing:
            raise InvalidInput(f"Unknown enterprise {', '.join(missing)}.", subject="enterprise")
        if repository.connection_by_digest(conn, digest) is not None:
            raise Conflict("That access token is registered already.", subject="access_token")
        now = utc_now()
        connection_id = repository.insert_connection(
            conn,
            integration_id=int(integration.id),
            digest=digest,
            property_ids=[found[e].id for e in wanted],
            scopes=scope_names,
            now=now,
        )
        events.append_many(
            conn,
            [
                records.access_token_created(
                    property_id=found[e].id,
                    access_token_id=connection_id,
                    integration_id=int(integration.id),
                    scopes=scope_names,
                )
                for e in wanted
            ],
            actor=Actor.system(),
            now=now,
        )
    return IssuedSecret(
        id=connection_id, secret=token, enterprise_ids=tuple(wanted), scopes=tuple(scope_names)
    )


def list_access_tokens(store: Store) -> list[dict[str, Any]]:
    """Every access token with its integration, enterprises and scopes; never a secret."""
    with store.read() as conn:
        return repository.list_connections(conn)


def revoke_access_token(
    store: Store, *, access_token: str | None = None, connection_id: int | None = None
) -> int:
    with store.write() as conn:
        if access_token is not None:
            row = repository.connection_by_digest(conn, secret_digest(access_token))
            if row is None:
                raise InvalidInput("Unknown access token.", subject="access_token")
            connection_id = int(row.id)
        if connection_id is None or not repository.connection_exists(conn, connection_id):
            raise InvalidInput("Unknown access token.", subject="access_token")
        now = utc_now()
        if repository.revoke_connection(conn, connection_id, now=now):
            events.append_many(
                conn,
                [
                    records.access_token_revoked(property_id=prop.id, access_token_id=connection_id)
                    for prop in repository.connection_properties_of(conn, connection_id)
                ],
                actor=Actor.system(),
                now=now,
            )
        return connection_id


def authenticate_integration(
    store: Store, *, client_token: str, access_token: str, cache: CallerCache | None = None
) -> IntegrationCaller:
    """The caller behind a ClientToken/AccessToken pair, or ``Unauthenticated``."""
    if not (
        0 < len(client_token) <= MAX_SECRET_LENGTH and 0 < len(access_token) <= MAX_SECRET_LENGTH
    ):
        raise Unauthenticated("Invalid ClientToken or AccessToken.")
    client_digest = secret_digest(client_token)
    access_digest = secret_digest(access_token)
    key = f"pair:{client_digest}:{access_digest}"
    remembered = cache.get(key) if cache is not None else None
    if remembered is not None:
        return remembered
    caller = _authenticate_pair(store, client_digest, access_digest)
    if cache is not None:
        cache.remember(key, caller)
    return caller


def _authenticate_pair(store: Store, client_digest: str, access_digest: str) -> IntegrationCaller:
    with store.read() as conn:
        integration = repository.integration_by_digest(conn, client_digest)
        connection = repository.connection_by_digest(conn, access_digest)
        if (
            integration is None
            or connection is None
            or not digests_match(integration.client_token_digest, client_digest)
            or not digests_match(connection.access_token_digest, access_digest)
        ):
            raise Unauthenticated("Invalid ClientToken or AccessToken.")
        if not integration.enabled:
            raise Unauthenticated("The integration is disabled.")
        if connection.revoked_utc is not None:
            raise Unauthenticated("The access token has been revoked.")
        if connection.integration_id != integration.id:
            raise Unauthenticated("The access token belongs to another integration.")
        return _caller(conn, integration, connection)


def _caller(conn: Connection, integration: Any, connection: Any) -> IntegrationCaller:
    """The caller of an authenticated integration and connection, with the connection's scope."""
    properties = repository.connection_properties_of(conn, int(connection.id))
    return IntegrationCaller(
        integration_id=int(integration.id),
        integration_name=str(integration.name),
        connection_id=int(connection.id),
        scope=Scope(tuple(sorted(properties, key=lambda p: p.id))),
        permissions=_permissions(connection.scopes),
    )


def _permissions(names: Any) -> frozenset[Permission]:
    """The stored scopes; a name this version does not know grants nothing (fail closed)."""
    if not isinstance(names, list):
        return frozenset()
    known = {p.value for p in EVERY_PERMISSION}
    return frozenset(Permission(name) for name in names if name in known)


def authenticate_access_token(
    store: Store, *, access_token: str, cache: CallerCache | None = None
) -> IntegrationCaller:
    """The caller behind an AccessToken alone (keyledger's own API: ``Authorization: Bearer``)."""
    if not 0 < len(access_token) <= MAX_SECRET_LENGTH:
        raise Unauthenticated("Invalid access token.")
    digest = secret_digest(access_token)
    key = f"access:{digest}"
    remembered = cache.get(key) if cache is not None else None
    if remembered is not None:
        return remembered
    caller = _authenticate_access(store, digest)
    if cache is not None:
        cache.remember(key, caller)
    return caller


def _authenticate_access(store: Store, digest: str) -> IntegrationCaller:
    with store.read() as conn:
        connection = repository.connection_by_digest(conn, digest)
        if connection is None or not digests_match(connection.access_token_digest, digest):
            raise Unauthenticated("Invalid access token.")
        if connection.revoked_utc is not None:
            raise Unauthenticated("The access token has been revoked.")
        integration = repository.integration_by_id(conn, int(connection.integration_id))
        if integration is None or not integration.enabled:
            raise Unauthenticated("The integration is disabled.")
        return _caller(conn, integration, connection)
