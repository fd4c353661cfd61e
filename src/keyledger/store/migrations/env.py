"""Alembic environment: runs on the connection handed over by ``keyledger.store.migrate``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from keyledger.store.schema import metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError("keyledger migrations run through `keyledger migrate` / serve")
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
run_migrations_online()
