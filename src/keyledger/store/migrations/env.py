"""Alembic environment: runs on the connection handed over by ``keyledger.store.migrate``."""

from __future__ import annotations

from typing import Any, Literal

from alembic import context
from alembic.autogenerate.api import AutogenContext
from sqlalchemy import Connection

from keyledger.store.schema import SEARCH_OBJECTS, UtcDateTime, metadata


def include_object(
    _object: object, name: str | None, _type: str, _reflected: bool, _compare_to: object
) -> bool:
    """Leave out the search structures that migration 0002 makes with raw SQL."""
    return name not in SEARCH_OBJECTS


def render_item(type_: str, obj: Any, _autogen_context: AutogenContext) -> str | Literal[False]:
    """Autogenerate writes the live ``UtcDateTime`` as the plain type it creates, so a new
    migration never imports ``keyledger.store.schema`` (migrations are self-contained; the
    ``migrations-self-contained`` import-linter contract checks it)."""
    if type_ == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


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
        render_item=render_item,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported")
run_migrations_online()
