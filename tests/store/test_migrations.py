"""Migrations create exactly the schema the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from keyledger.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import current_revision, head_revision, is_current, upgrade
from keyledger.store.schema import SEARCH_OBJECTS, metadata
from tests.support import DatabaseFactory


def test_migrated_schema_equals_the_declared_schema(databases: DatabaseFactory) -> None:
    store = Store(Settings(database_url=databases.new_url()))
    try:
        assert current_revision(store.engine) == head_revision()
        assert is_current(store.engine)
        upgrade(store.engine)  # applying again changes nothing
        with store.engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={"include_object": lambda _o, name, *_: name not in SEARCH_OBJECTS},
            )
            differences = compare_metadata(context, metadata)
        assert differences == []
    finally:
        store.dispose()
