"""Serialisation points for writes that no single row can guard (docs/architecture.md,
"Concurrent writes").

A rule over rows that may not exist yet (two tokens must not collide, a reader locks after so
many refusals) cannot be protected by row locks. On PostgreSQL such a write first takes a
transaction-level advisory lock per thing it decides about; the lock is released by the commit or
rollback. Several locks are always taken in ascending key order, so two writers never wait for
each other in a cycle. On SQLite every write transaction already holds the one write lock
(``BEGIN IMMEDIATE``), which serialises them all: there is nothing to take.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

from sqlalchemy import Connection, bindparam, text

_ADVISORY = text("SELECT pg_advisory_xact_lock(:key)").bindparams(bindparam("key"))
_ADVISORY_SHARED = text("SELECT pg_advisory_xact_lock_shared(:key)").bindparams(bindparam("key"))


@lru_cache(maxsize=65_536)  # per request (a NAS's, a token's budgets): hashed once
def advisory_key(namespace: str, *parts: bytes | str | int) -> int:
    """A signed 64-bit advisory lock key for ``parts`` within ``namespace`` (one hash, so keys
    of different namespaces and parts collide only by chance, which just serialises more)."""
    digest = hashlib.blake2b(digest_size=8, person=namespace.encode()[:16])
    for part in parts:
        data = part if isinstance(part, bytes) else str(part).encode()
        digest.update(len(data).to_bytes(4, "big") + data)
    return int.from_bytes(digest.digest(), "big", signed=True)


def serialise_on(conn: Connection, keys: Iterable[int]) -> None:
    """Hold the advisory locks ``keys`` until the transaction ends, taken in ascending order;
    nothing on SQLite, whose write transactions are serialised already."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        conn.execute(_ADVISORY, {"key": key})


def share_on(conn: Connection, keys: Iterable[int]) -> None:
    """Hold the advisory locks ``keys`` in shared mode until the transaction ends (writers that
    only read the thing, such as the collision rule reading a property's resource tree, take
    turns with one that changes it, not with each other); nothing on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        conn.execute(_ADVISORY_SHARED, {"key": key})
