"""Rewriting door credential values under the current key (``keyledger admin rotate-key``).

Values are read in row order, batch by batch, and each one not yet in the form the store writes
now (sealed under the first configured key, or in clear with ``decrypt``) is written again with
its new fingerprint. Servers may keep running: they open every configured key, and a row is only
rewritten if it still holds what was read (compare and set), so a value a client changed
meanwhile is never put back. A rotation that stops half-way leaves every value readable and can
simply be run again. Rewriting a value is not a change of the token: ``UpdatedUtc`` stays.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, literal, select, update

from keyledger.domain.credentials.models import CredentialKind
from keyledger.kit.errors import KeysMissing
from keyledger.kit.sealing import ValueSealer, key_id_in_sql
from keyledger.store import Store
from keyledger.store.schema import credentials as t

_RESERVATIONS = t.c.kind == literal(CredentialKind.RESERVATION.value, literal_execute=True)

_REWRITE = (
    update(t)
    .where(
        t.c.id == bindparam("row_id"),
        t.c.value == bindparam("old_value"),
        t.c.value_sealed.is_not_distinct_from(bindparam("old_sealed")),
    )
    .values(
        value=bindparam("new_value"),
        value_sealed=bindparam("new_sealed"),
        value_fp=bindparam("new_fp"),
    )
)


@dataclass(frozen=True)
class Rekeying:
    #: Id of the key values are sealed with now (None: in clear).
    key_id: str | None
    examined: int
    rewritten: int
    #: Rows a client changed between read and write (already written in the current form).
    changed_meanwhile: int


def sealed_key_ids(store: Store) -> dict[str, int]:
    """How many door credential values are sealed with each key (by key id)."""
    key_id = key_id_in_sql(t.c.value_sealed)
    with store.read() as conn:
        rows = conn.execute(
            select(key_id, func.count())
            .where(_RESERVATIONS, t.c.value_sealed.is_not(None))
            .group_by(key_id)
        ).all()
    return {bytes(raw).hex(): int(count) for raw, count in rows}


def rekey_values(store: Store, *, decrypt: bool = False, batch_size: int = 1_000) -> Rekeying:
    """Rewrite every door credential value sealed under the first configured key (in clear with
    ``decrypt``). Refuses, changing nothing, when a value is sealed with an unconfigured key."""
    current = store.sealer
    target = ValueSealer() if decrypt else current
    missing = sorted(k for k in sealed_key_ids(store) if not current.holds(k))
    if missing:
        raise KeysMissing(
            "credential values are sealed with key(s) "
            + ", ".join(missing)
            + ", which KEYLEDGER_ENCRYPTION_KEY does not hold: add them after the key to seal "
            "with and run again. Nothing was changed."
        )
    examined = rewritten = changed = after = 0
    while rows := read_batch(store, after=after, size=batch_size):
        after = rows[-1][0]
        examined += len(rows)
        work = plan(rows, current=current, target=target)
        done = apply(store, work)
        rewritten += done
        changed += len(work) - done
    return Rekeying(
        key_id=target.primary_key_id,
        examined=examined,
        rewritten=rewritten,
        changed_meanwhile=changed,
    )


def read_batch(store: Store, *, after: int, size: int) -> list[Sequence[Any]]:
    """The next ``size`` door credentials after row id ``after``: id, uid, value, sealed."""
    with store.read() as conn:
        return list(
            conn.execute(
                select(t.c.id, t.c.uid, t.c.value, t.c.value_sealed)
                .where(_RESERVATIONS, t.c.id > after)
                .order_by(t.c.id)
                .limit(size)
            )
        )


def plan(
    rows: list[Sequence[Any]], *, current: ValueSealer, target: ValueSealer
) -> list[dict[str, Any]]:
    """The rewrites of the rows not yet in ``target``'s form (opened with ``current``)."""
    work = []
    for row_id, uid, value, sealed in rows:
        if target.is_current(sealed):
            continue
        plain = value if sealed is None else current.open(uid, sealed)
        new = target.columns(uid, plain)
        work.append(
            {
                "row_id": row_id,
                "old_value": value,
                "old_sealed": sealed,
                "new_value": new["value"],
                "new_sealed": new["value_sealed"],
                "new_fp": new["value_fp"],
            }
        )
    return work


def apply(store: Store, work: list[dict[str, Any]]) -> int:
    """Write the planned rewrites in one transaction; how many rows still held what was read."""
    if not work:
        return 0
    with store.write() as conn:
        return sum(int(conn.execute(_REWRITE, item).rowcount) for item in work)


def compact(store: Store) -> None:
    """Rebuild the credentials storage so values rewritten leave nothing in free space
    (SQLite: VACUUM of the file; PostgreSQL: VACUUM FULL of the table). Blocks writers while it
    runs."""
    if store.dialect == "sqlite":
        # Outside any transaction: the raw connection is in autocommit mode (engine.py).
        raw = store.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("VACUUM")
            cursor.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            cursor.close()
        finally:
            raw.close()
        return
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.exec_driver_sql("VACUUM FULL credentials")
