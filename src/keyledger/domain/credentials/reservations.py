"""Rules and transactions for reservation tokens (Mews door credentials; ``vouchers.py`` holds
the Wi-Fi vouchers). Every function takes the caller's scope and actor."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.credentials import repository, reservation_repository
from keyledger.domain.credentials.collisions import refuse_collisions
from keyledger.domain.credentials.models import (
    TRACKED_FIELDS,
    Credential,
    CredentialKind,
    Page,
    ReservationTokenChange,
    ReservationTokenDraft,
    ReservationTokenQuery,
)
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.guessing import service as guessing
from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import CredentialNotFound, GuessingThrottled, InvalidInput, RuleViolation
from keyledger.kit.sealing import ValueSealer
from keyledger.store import Store
from keyledger.store.locks import advisory_key, serialise_on, share_on

#: The budget of a blind writer when the dialect names none (docs/access.md defaults).
DEFAULT_BUDGET = GuessBudget()


def _check_validity(valid_from: datetime, valid_to: datetime, *, label: str) -> None:
    if valid_to <= valid_from:
        raise RuleViolation(
            f"{label}: the validity must end after it starts "
            f"({valid_from.isoformat()} .. {valid_to.isoformat()}).",
            subject="validity",
        )


def list_reservation_tokens(store: Store, *, scope: Scope, query: ReservationTokenQuery) -> Page:
    """One page of reservation tokens, newest first (created, then id), after ``query.cursor``."""
    if query.enterprise_ids is not None:
        scope = scope.narrow_to_enterprises(query.enterprise_ids)
    properties = scope.by_id
    with store.read() as conn:
        after = None
        if query.cursor is not None:
            after = reservation_repository.position_of(
                conn,
                property_ids=list(properties),
                kind=CredentialKind.RESERVATION,
                uid=query.cursor,
            )
            if after is None:
                raise InvalidInput(
                    f"The cursor {query.cursor} names no token in scope.", subject="cursor"
                )
        found = reservation_repository.select_reservation_page(
            conn, properties=properties, query=query, after=after, sealer=store.sealer
        )
    return Page(credentials=found, cursor=found[-1].uid if found else None)


def _target_properties(
    store_conn: Connection,
    *,
    scope: Scope,
    drafts: Sequence[ReservationTokenDraft],
    enterprise_id: UUID | None,
) -> list[Property]:
    """Where each new token goes: the named enterprise, the only one, or its service order's."""
    if enterprise_id is not None:
        return [scope.enterprise(enterprise_id)] * len(drafts)
    if not scope.is_portfolio:
        return [scope.properties[0]] * len(drafts)
    known = reservation_repository.properties_of_service_orders(
        store_conn,
        property_ids=scope.property_ids,
        service_order_ids=list({draft.service_order_id for draft in drafts}),
    )
    targets = []
    for index, draft in enumerate(drafts):
        holders = known.get(draft.service_order_id, set())
        if len(holders) != 1:
            reason = (
                "is held by several enterprises of the portfolio"
                if holders
                else "is unknown to keyledger"
            )
            raise InvalidInput(
                f"Item {index}: service order {draft.service_order_id} {reason}, so the "
                "enterprise cannot be inferred; give EnterpriseId with a portfolio access token.",
                subject="enterprise",
            )
        targets.append(scope.by_id[holders.pop()])
    return targets


def add_reservation_tokens(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    drafts: Sequence[ReservationTokenDraft],
    enterprise_id: UUID | None = None,
    reveal_conflicts: bool = True,
    caller: str = "",
    budget: GuessBudget = DEFAULT_BUDGET,
) -> list[Credential]:
    """Add tokens atomically: all of them, or none when any is refused. In request order.

    A writer that may not read values (``reveal_conflicts`` False) learns of a collision only
    that there is one, and pays for it from ``caller``'s guessing budget (``_Blind``)."""
    for index, draft in enumerate(drafts):
        _check_validity(draft.valid_from, draft.valid_to, label=f"Item {index}")
    now = utc_now()

    blind = None if reveal_conflicts else _Blind(caller, budget, actor, now)

    def work(conn: Connection) -> list[Credential] | _Refused:
        if blind is not None:
            blind.gate(conn)
        targets = _target_properties(conn, scope=scope, drafts=drafts, enterprise_id=enterprise_id)
        created = [
            Credential.new_reservation(prop=target, draft=draft, actor_label=actor.label, now=now)
            for draft, target in zip(drafts, targets, strict=True)
        ]
        refused = _collisions(
            conn, store.sealer, scope, list(enumerate(created)), blind=blind, items=len(drafts)
        )
        if refused is not None:
            return refused
        repository.insert_credentials_quietly(
            conn, [repository.row_of(c, store.sealer) for c in created]
        )
        events.append_many(conn, [_created_event(c) for c in created], actor=actor, now=now)
        return created

    return _kept(store.write_retrying(work))


def update_reservation_tokens(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    changes: Sequence[ReservationTokenChange],
    enterprise_id: UUID | None = None,
    reveal_conflicts: bool = True,
    caller: str = "",
    budget: GuessBudget = DEFAULT_BUDGET,
) -> list[Credential]:
    """Apply changes atomically, in order; the tokens as they end up, in request order. A
    writer that may not read values: as for ``add_reservation_tokens`` (a batch that changes
    no value is not held back by a used-up budget: it tries no code)."""
    if enterprise_id is not None:
        expected: Property | None = scope.enterprise(enterprise_id)
    else:
        expected = None
    now = utc_now()
    blind = None if reveal_conflicts else _Blind(caller, budget, actor, now)
    carries_values = any(change.value is not None for change in changes)

    def work(conn: Connection) -> list[Credential] | _Refused:
        if blind is not None and carries_values:
            blind.gate(conn)
        current = repository.by_uids(
            conn,
            properties=scope.by_id,
            kind=CredentialKind.RESERVATION,
            uids=list({change.credential_id for change in changes}),
            sealer=store.sealer,
            lock=True,
        )
        missing = [c.credential_id for c in changes if c.credential_id not in current]
        if missing:
            raise CredentialNotFound(list(dict.fromkeys(missing)))
        results: list[Credential] = []
        touched: dict[UUID, Credential] = {}
        changed_items: dict[UUID, int] = {}
        for index, change in enumerate(changes):
            before = touched.get(change.credential_id) or current[change.credential_id]
            if expected is not None and before.property.id != expected.id:
                raise InvalidInput(
                    f"Item {index}: token {before.uid} belongs to enterprise "
                    f"{before.property.enterprise_id}, not {expected.enterprise_id}.",
                    subject="enterprise",
                )
            if not before.is_active:
                raise RuleViolation(
                    f"Item {index}: token {before.uid} is deleted and cannot be updated.",
                    subject="deleted",
                )
            after = replace(
                before,
                value=before.value if change.value is None else change.value,
                valid_from=before.valid_from if change.valid_from is None else change.valid_from,
                valid_to=before.valid_to if change.valid_to is None else change.valid_to,
                permissions=change.permissions.apply(before.permissions),
            )
            assert after.valid_from is not None and after.valid_to is not None
            _check_validity(after.valid_from, after.valid_to, label=f"Item {index}")
            if after != before:
                after = replace(after, updated_utc=now, updated_by=actor.label)
                touched[after.uid] = after
                changed_items[after.uid] = index
            results.append(after)
        refused = _collisions(
            conn,
            store.sealer,
            scope,
            [(changed_items[uid], credential) for uid, credential in touched.items()],
            blind=blind,
            items=len(changes),
        )
        if refused is not None:
            return refused
        if touched:
            repository.rewrite_credentials(
                conn,
                [
                    {"row_id": c.id, **repository.row_of(c, store.sealer)}
                    for c in sorted(touched.values(), key=lambda c: c.id)
                ],
                columns=repository.RESERVATION_MUTABLE,
            )
            events.append_many(
                conn,
                [
                    records.credential_updated(
                        property_id=c.property.id,
                        credential_uid=c.uid,
                        changed=records.changed_fields(current[uid], c, TRACKED_FIELDS[c.kind]),
                    )
                    for uid, c in touched.items()
                ],
                actor=actor,
                now=now,
            )
        final = {**current, **touched}
        return [final[result.uid] for result in results]

    return _kept(store.write_retrying(work))


def _created_event(credential: Credential) -> records.NewEvent:
    """The ``credential.created`` event of a new reservation token."""
    return records.credential_created(
        property_id=credential.property.id,
        credential_uid=credential.uid,
        kind=credential.kind.value,
        token_type=None if credential.token_type is None else credential.token_type.value,
    )


#: The collision refusal a writer without ``credentials:read`` gets: no item, no other token.
CONCEALED_COLLISION = (
    "The batch would make two active tokens with the same Type and Value open the same door "
    "at the same time; nothing was kept."
)


@dataclass(frozen=True, slots=True)
class _Refused:
    """A batch refused by the collision rule for a writer that may not read values: its misses
    are counted in the batch's transaction (nothing else of it was written), which commits;
    then the refusal is raised (``_kept``)."""


@dataclass(frozen=True, slots=True)
class _Blind:
    """A writer without ``credentials:read``: every value of a batch the collision rule
    refuses is a miss against its own guessing budget (docs/access.md, "The collision rule"),
    and once that is used up its writes carrying values are refused before the rule runs."""

    caller: str
    budget: GuessBudget
    actor: Actor
    now: datetime

    def gate(self, conn: Connection) -> None:
        # Held to the end of the write: batches of one caller are gated and counted in turn.
        serialise_on(conn, [guessing.caller_lock_key(self.caller)])
        until = guessing.caller_throttled_until(
            conn, caller=self.caller, budget=self.budget, now=self.now
        )
        if until is not None:
            raise GuessingThrottled(max(1, math.ceil((until - self.now).total_seconds())))


def _collisions(
    conn: Connection,
    sealer: ValueSealer,
    scope: Scope,
    written: Sequence[tuple[int, Credential]],
    *,
    blind: _Blind | None,
    items: int,
) -> _Refused | None:
    """The collision rule; for a blind writer a refusal is concealed, and each of the batch's
    ``items`` counts as a miss."""
    try:
        _refuse_collisions(conn, sealer, scope, written)
    except RuleViolation:
        if blind is None:
            raise
        guessing.count_caller_misses(
            conn,
            caller=blind.caller,
            property_id=written[0][1].property.id,
            misses=items,
            budget=blind.budget,
            actor=blind.actor,
            now=blind.now,
        )
        return _Refused()
    return None


def _kept(result: list[Credential] | _Refused) -> list[Credential]:
    if isinstance(result, _Refused):
        raise RuleViolation(CONCEALED_COLLISION, subject="collision")
    return result


def _refuse_collisions(
    conn: Connection, sealer: ValueSealer, scope: Scope, written: Sequence[tuple[int, Credential]]
) -> None:
    """The collision rule, serialised: two writers of one value in one property (same value
    fingerprint) take turns, each deciding on what the other committed (on PostgreSQL an
    advisory lock per property and fingerprint, in key order; SQLite's write lock serialises
    already). Every write that can create a collision (add, an update of value, validity or
    permissions) comes through here."""
    serialise_on(
        conn,
        (
            advisory_key("collision", credential.property.id, sealer.fingerprint(credential.value))
            for _, credential in written
        ),
    )
    by_property: dict[int, list[tuple[int, Credential]]] = {}
    for index, credential in written:
        by_property.setdefault(credential.property.id, []).append((index, credential))
    # The reach of a token is read from the resource tree: it must not change meanwhile.
    share_on(conn, (advisory_key("tree", property_id) for property_id in by_property))
    for property_id, items in by_property.items():
        refuse_collisions(
            conn,
            prop=scope.by_id[property_id],
            properties=scope.by_id,
            written=items,
            sealer=sealer,
        )


def delete_reservation_tokens(
    store: Store, *, scope: Scope, actor: Actor, credential_ids: Sequence[UUID]
) -> None:
    """Mark tokens deleted; already deleted ones stay as they are (a retry is safe)."""
    wanted = list(dict.fromkeys(credential_ids))

    def work(conn: Connection) -> None:
        found = repository.by_uids(
            conn,
            properties=scope.by_id,
            kind=CredentialKind.RESERVATION,
            uids=wanted,
            sealer=store.sealer,
            lock=True,
        )
        missing = [uid for uid in wanted if uid not in found]
        if missing:
            raise CredentialNotFound(missing)
        now = utc_now()
        repository.mark_deleted(
            conn, row_ids=sorted(c.id for c in found.values()), now=now, actor_label=actor.label
        )
        events.append_many(
            conn,
            [
                records.credential_deleted(property_id=c.property.id, credential_uid=c.uid)
                for c in found.values()
                if c.is_active
            ],
            actor=actor,
            now=now,
        )

    store.write_retrying(work)


def import_credentials(
    conn: Connection, credentials: Sequence[Credential], sealer: ValueSealer
) -> None:
    """Write credentials exactly as given: their uids, ids (a voucher's, when not 0), times and
    authors, without the rules of ``add_reservation_tokens`` (the caller vouches that they do
    not collide) and without events, since they are records that existed before this store saw
    them (the demo's seed examples, ``cli/demo.py``). A uid the store holds already is left as
    it is. Runs in the caller's write transaction."""
    taken = repository.existing_uids(conn, [c.uid for c in credentials])
    credentials = [c for c in credentials if c.uid not in taken]
    repository.insert_credentials_quietly(
        conn, [repository.row_of(c, sealer) for c in credentials if not c.id]
    )
    repository.insert_credentials_keeping_ids(
        conn, [{**repository.row_of(c, sealer), "id": c.id} for c in credentials if c.id]
    )
