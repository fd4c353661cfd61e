"""The credential store: SQLAlchemy Core over SQLite (default) or PostgreSQL."""

from __future__ import annotations

from keyledger.store.engine import Store, deadline_scope

__all__ = ["Store", "deadline_scope"]
