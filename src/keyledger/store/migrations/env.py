"""Alembic environment: runs on the connection handed over by ``keyledger.store.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from keyledger.store.schema import SEARCH_OBJECTS, metadata


def include_object(
    _object: object, name: str | None, _type: str, _reflected: bool, _compare_to: object
) -> bool:
    """Leave out the search structures that migration 0002 makes with raw SQL."""
    return name not in SEARCH_OBJECTS


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("keyledger migrations run through `keyledger migrate` / serve")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=include_object,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
run_migrations_online()
