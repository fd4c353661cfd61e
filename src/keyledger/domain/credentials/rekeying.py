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

from keyledger.domain.credentials import reservation_repository as repository
from keyledger.kit.errors import KeysMissing
from keyledger.kit.sealing import ValueSealer
from keyledger.store import Store


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
    with store.read() as conn:
        return {raw.hex(): count for raw, count in repository.sealed_key_counts(conn)}


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
        return repository.value_batch(conn, after=after, size=size)


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
        return sum(repository.rewrite_value(conn, item) for item in work)


def compact(store: Store) -> None:
    """Rebuild the credentials storage so values rewritten leave nothing in free space (see
    ``reservation_repository.compact``). Blocks writers while it runs."""
    repository.compact(store)
