"""SQL for integrations, connections (access tokens) and users."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from keyledger.domain.properties.models import Property
from keyledger.domain.properties.repository import by_ids
from keyledger.store.schema import (
    bearer_tokens,
    connection_properties,
    connections,
    integrations,
    memberships,
    users,
)


def insert_integration(conn: Connection, *, name: str, digest: str, now: datetime) -> int:
    return int(
        conn.execute(
            insert(integrations).returning(integrations.c.id),
            {"name": name, "client_token_digest": digest, "enabled": True, "created_utc": now},
        ).scalar_one()
    )


def integration_by_digest(conn: Connection, digest: str) -> Any:
    return conn.execute(
        select(
            integrations.c.id,
            integrations.c.name,
            integrations.c.client_token_digest,
            integrations.c.enabled,
        ).where(integrations.c.client_token_digest == digest)
    ).first()


def integration_by_id(conn: Connection, integration_id: int) -> Any:
    return conn.execute(
        select(integrations.c.id, integrations.c.name, integrations.c.enabled).where(
            integrations.c.id == integration_id
        )
    ).first()


def set_integration_enabled(
    conn: Connection, integration_id: int, *, enabled: bool, now: datetime
) -> int:
    result = conn.execute(
        update(integrations)
        .where(integrations.c.id == integration_id)
        .values(enabled=enabled, disabled_utc=None if enabled else now)
    )
    return int(result.rowcount)


def insert_connection(
    conn: Connection,
    *,
    integration_id: int,
    digest: str,
    property_ids: Sequence[int],
    scopes: Sequence[str],
    now: datetime,
) -> int:
    connection_id = int(
        conn.execute(
            insert(connections).returning(connections.c.id),
            {
                "integration_id": integration_id,
                "access_token_digest": digest,
                "created_utc": now,
                "scopes": list(scopes),
            },
        ).scalar_one()
    )
    conn.execute(
        insert(connection_properties),
        [{"connection_id": connection_id, "property_id": pid} for pid in property_ids],
    )
    return connection_id


def connection_by_digest(conn: Connection, digest: str) -> Any:
    return conn.execute(
        select(
            connections.c.id,
            connections.c.integration_id,
            connections.c.access_token_digest,
            connections.c.revoked_utc,
            connections.c.scopes,
        ).where(connections.c.access_token_digest == digest)
    ).first()


def list_connections(conn: Connection) -> list[dict[str, Any]]:
    """Every access token (never its digest): id, integration, scopes, enterprises, times."""
    rows = conn.execute(
        select(
            connections.c.id,
            connections.c.integration_id,
            integrations.c.name,
            connections.c.scopes,
            connections.c.created_utc,
            connections.c.revoked_utc,
        )
        .join(integrations, integrations.c.id == connections.c.integration_id)
        .order_by(connections.c.id)
    ).all()
    links = conn.execute(
        select(connection_properties.c.connection_id, connection_properties.c.property_id)
    ).all()
    found = {p.id: p for p in by_ids(conn, list({link[1] for link in links}))}
    enterprises: dict[int, list[UUID]] = {}
    for connection_id, property_id in links:
        enterprises.setdefault(int(connection_id), []).append(found[property_id].enterprise_id)
    return [
        {
            "id": int(row.id),
            "integration_id": int(row.integration_id),
            "integration_name": str(row.name),
            "scopes": list(row.scopes),
            "enterprise_ids": sorted(enterprises.get(int(row.id), []), key=str),
            "created_utc": row.created_utc,
            "revoked_utc": row.revoked_utc,
        }
        for row in rows
    ]


def connection_properties_of(conn: Connection, connection_id: int) -> list[Property]:
    property_ids = list(
        conn.execute(
            select(connection_properties.c.property_id).where(
                connection_properties.c.connection_id == connection_id
            )
        ).scalars()
    )
    return by_ids(conn, property_ids)


def revoke_connection(conn: Connection, connection_id: int, *, now: datetime) -> int:
    result = conn.execute(
        update(connections)
        .where(connections.c.id == connection_id, connections.c.revoked_utc.is_(None))
        .values(revoked_utc=now)
    )
    return int(result.rowcount)


def connection_exists(conn: Connection, connection_id: int) -> bool:
    found = conn.execute(select(connections.c.id).where(connections.c.id == connection_id)).first()
    return found is not None


def integration_exists(conn: Connection, integration_id: int) -> bool:
    found = conn.execute(
        select(integrations.c.id).where(integrations.c.id == integration_id)
    ).first()
    return found is not None


def user_id_by_email(conn: Connection, email: str) -> int | None:
    found = conn.execute(select(users.c.id).where(users.c.email == email)).scalar_one_or_none()
    return None if found is None else int(found)


def insert_user(conn: Connection, *, email: str, password_hash: str, now: datetime) -> int:
    return int(
        conn.execute(
            insert(users).returning(users.c.id),
            {
                "email": email,
                "password_hash": password_hash,
                "api_access": True,
                "created_utc": now,
            },
        ).scalar_one()
    )


def change_user(conn: Connection, user_id: int, **values: Any) -> None:
    """Set columns of a user (``disabled_utc``, ``password_hash``)."""
    conn.execute(update(users).where(users.c.id == user_id).values(**values))


def revoke_bearers_of(conn: Connection, user_id: int, *, now: datetime) -> int:
    """Revoke every live bearer token of a user; how many there were."""
    result = conn.execute(
        update(bearer_tokens)
        .where(bearer_tokens.c.user_id == user_id, bearer_tokens.c.revoked_utc.is_(None))
        .values(revoked_utc=now)
    )
    return int(result.rowcount)


def insert_memberships(
    conn: Connection, *, user_id: int, property_ids: Sequence[int], roles: Sequence[str]
) -> None:
    conn.execute(
        insert(memberships),
        [{"user_id": user_id, "property_id": pid, "roles": list(roles)} for pid in property_ids],
    )


_USER = select(
    users.c.id, users.c.email, users.c.password_hash, users.c.api_access, users.c.disabled_utc
)


def user_by_email(conn: Connection, email: str) -> Any:
    return conn.execute(_USER.where(users.c.email == email)).first()


def auth_failures_epoch(conn: Connection, email: str) -> int:
    """The user's failed-login epoch; 0 for an e-mail that is no user's."""
    found = conn.execute(
        select(users.c.auth_failures_epoch).where(users.c.email == email)
    ).scalar_one_or_none()
    return int(found or 0)


def advance_auth_failures_epoch(conn: Connection, user_id: int) -> None:
    conn.execute(
        update(users)
        .where(users.c.id == user_id)
        .values(auth_failures_epoch=users.c.auth_failures_epoch + 1)
    )


def user_by_id(conn: Connection, user_id: int) -> Any:
    return conn.execute(_USER.where(users.c.id == user_id)).first()


def memberships_of(conn: Connection, user_id: int) -> list[tuple[Property, list[str]]]:
    rows = conn.execute(
        select(memberships.c.property_id, memberships.c.roles).where(
            memberships.c.user_id == user_id
        )
    ).all()
    found = {p.id: p for p in by_ids(conn, [row[0] for row in rows])}
    return [(found[row[0]], list(row[1])) for row in rows]


def insert_bearer(
    conn: Connection,
    *,
    user_id: int,
    access_digest: str,
    refresh_digest: str,
    access_expires: datetime,
    refresh_expires: datetime,
    now: datetime,
    family_uid: UUID,
) -> None:
    conn.execute(
        insert(bearer_tokens),
        {
            "family_uid": family_uid,
            "user_id": user_id,
            "access_digest": access_digest,
            "refresh_digest": refresh_digest,
            "access_expires_utc": access_expires,
            "refresh_expires_utc": refresh_expires,
            "created_utc": now,
        },
    )


def bearer_by_access(conn: Connection, digest: str) -> Any:
    """The bearer row of an access-token digest, with ``digest`` and ``expires_utc``."""
    return conn.execute(
        select(
            bearer_tokens.c.id,
            bearer_tokens.c.user_id,
            bearer_tokens.c.access_digest.label("digest"),
            bearer_tokens.c.access_expires_utc.label("expires_utc"),
            bearer_tokens.c.revoked_utc,
        ).where(bearer_tokens.c.access_digest == digest)
    ).first()


def bearer_by_refresh(conn: Connection, digest: str) -> Any:
    """The bearer row of a refresh-token digest, with ``digest`` and ``expires_utc``."""
    return conn.execute(
        select(
            bearer_tokens.c.id,
            bearer_tokens.c.user_id,
            bearer_tokens.c.refresh_digest.label("digest"),
            bearer_tokens.c.refresh_expires_utc.label("expires_utc"),
            bearer_tokens.c.revoked_utc,
            bearer_tokens.c.family_uid,
        ).where(bearer_tokens.c.refresh_digest == digest)
    ).first()


def revoke_family(conn: Connection, family_uid: UUID, *, now: datetime) -> int:
    """Revoke every live pair descended from one password grant; how many there were."""
    result = conn.execute(
        update(bearer_tokens)
        .where(bearer_tokens.c.family_uid == family_uid, bearer_tokens.c.revoked_utc.is_(None))
        .values(revoked_utc=now)
    )
    return int(result.rowcount)


def lock_user(conn: Connection, user_id: int) -> Any:
    """The user's row, locked for the transaction (``FOR UPDATE`` on PostgreSQL): a refresh
    and an admin change of the user (disable, new password) take turns."""
    return conn.execute(_USER.where(users.c.id == user_id).with_for_update()).first()


def revoke_bearer(conn: Connection, bearer_id: int, *, now: datetime) -> int:
    """Revoke one pair if it is still live (a compare-and-set): 1 for the caller that revoked
    it, 0 for every other."""
    result = conn.execute(
        update(bearer_tokens)
        .where(bearer_tokens.c.id == bearer_id, bearer_tokens.c.revoked_utc.is_(None))
        .values(revoked_utc=now)
    )
    return int(result.rowcount)
