"""Serialisation points for writes that no single row can guard (docs/architecture.md,
"Concurrent writes").

A rule over rows that may not exist yet (two tokens must not collide, a reader locks after so
many refusals) cannot be protected by row locks. On PostgreSQL such a write first takes a
transaction-level advisory lock per thing it decides about; the lock is released by the commit or
rollback. Several locks are always taken in ascending key order, so two writers never wait for
each other in a cycle. On SQLite every write transaction already holds the one write lock
(``BEGIN IMMEDIATE``), which serialises them all: there is nothing to take.

A write that learns only halfway through that it needs a lock (a hotspot start whose code turns
out a miss counts against a guessing budget) may by then hold row locks, and waiting for an
advisory lock after a row lock could close a wait cycle with a writer that took them the other
way round. It takes the lock with ``hold_now`` instead, which never waits: when another
transaction holds it, ``LocksWanted`` ends the attempt and the group writer (``store/writer.py``)
runs it again with the locks taken first, in key order, before any row lock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from functools import lru_cache

from sqlalchemy import Connection, bindparam, text

_ADVISORY = text("SELECT pg_advisory_xact_lock(:key)").bindparams(bindparam("key"))
# Several keys in one round trip, in ascending order: the rows of the ordered subquery are
# produced, and each one's lock taken, one after the other.
_ADVISORY_MANY = text(
    "SELECT count(pg_advisory_xact_lock(key))"
    " FROM (SELECT key FROM unnest(CAST(:keys AS bigint[])) AS key ORDER BY key) AS ordered"
).bindparams(bindparam("keys"))
_TRY_ADVISORY = text("SELECT pg_try_advisory_xact_lock(:key)").bindparams(bindparam("key"))
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
    ordered = sorted(set(keys))
    if len(ordered) == 1:
        conn.execute(_ADVISORY, {"key": ordered[0]})
    elif ordered:
        conn.execute(_ADVISORY_MANY, {"keys": ordered})


def share_on(conn: Connection, keys: Iterable[int]) -> None:
    """Hold the advisory locks ``keys`` in shared mode until the transaction ends (writers that
    only read the thing, such as the collision rule reading a property's resource tree, take
    turns with one that changes it, not with each other); nothing on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    for key in sorted(set(keys)):
        conn.execute(_ADVISORY_SHARED, {"key": key})


class LocksWanted(Exception):
    """The advisory locks ``keys`` are held by another transaction and were wanted after this one
    may have taken row locks: roll back, take them first, run again (``GroupWriter`` does)."""

    def __init__(self, keys: Iterable[int]) -> None:
        self.keys = frozenset(keys)
        super().__init__(f"{len(self.keys)} advisory lock(s) wanted before the write's row locks")


def hold_now(conn: Connection, keys: Iterable[int]) -> None:
    """Hold the advisory locks ``keys`` until the transaction ends if no other transaction holds
    them (one this transaction holds already is held again); raise ``LocksWanted`` otherwise.
    Never waits, so it cannot be part of a wait cycle whatever this transaction has locked. The
    group writer answers ``LocksWanted`` by running the work again with the locks taken first;
    anywhere else it propagates (a transaction alone can just retry). Nothing on SQLite."""
    if conn.dialect.name != "postgresql":
        return
    wanted = sorted(set(keys))
    for key in wanted:
        if not conn.execute(_TRY_ADVISORY, {"key": key}).scalar_one():
            raise LocksWanted(wanted)
