"""Rules and transactions for Wi-Fi vouchers (the Nexudus access tokens).

A voucher is a code with a budget of minutes. ``minutes_left`` starts at ``minutes_included`` and
moves with it: changing the budget by d changes what is left by d, never below 0. A code is unique
among the live vouchers of its business (a partial unique index backs the check against races).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError

from keyledger.domain.credentials import repository, voucher_repository
from keyledger.domain.credentials.models import (
    TRACKED_FIELDS,
    Credential,
    VoucherFields,
    VoucherPage,
    VoucherQuery,
)
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.properties.models import Property, Scope
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import Conflict, CredentialNotFound, InvalidInput, RuleViolation
from keyledger.kit.inputs import code_key, code_problem, normal_code
from keyledger.store import Store
from keyledger.store.schema import MINUTES_MAX, USER_LIMIT_MAX

#: Server-made codes avoid characters people confuse (0/O, 1/I/L).
CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
CODE_LENGTH = 8
MAX_BULK = 1000


class WithdrawalHook(Protocol):
    """What must happen, in the transaction that changed ``vouchers`` (after their events), to
    those the change withdrew (deleted, expired, not yet valid, out of minutes): their hotspot
    sessions end. Every rewrite takes it as a required argument, so no caller can forget it; the
    adapters pass ``keyledger.domain.hotspot.service.end_withdrawn_sessions``. A hook, not an
    import: hotspot sits above credentials in the domain layers (docs/architecture.md)."""

    def __call__(
        self, conn: Connection, vouchers: Sequence[Credential], *, actor: Actor, now: datetime
    ) -> None: ...


def _check(fields: VoucherFields) -> VoucherFields:
    """The fields, refused (InvalidInput) or with the code as stored (``normal_code``)."""
    problem = code_problem(fields.access_code)
    if problem is not None:
        raise InvalidInput(problem, subject="access_code")
    if len(fields.access_code) > 255:
        raise InvalidInput("must have at most 255 characters", subject="access_code")
    if not 0 <= fields.minutes_included <= MINUTES_MAX:
        raise InvalidInput(
            f"must be between 0 and {MINUTES_MAX}",
            subject="minutes_included",
            value=fields.minutes_included,
        )
    if fields.user_limit is not None and not 1 <= fields.user_limit <= USER_LIMIT_MAX:
        raise InvalidInput(
            f"must be between 1 and {USER_LIMIT_MAX}",
            subject="user_limit",
            value=fields.user_limit,
        )
    if fields.valid_from and fields.valid_to and fields.valid_to <= fields.valid_from:
        raise RuleViolation("must be after ValidFrom", subject="validity", value=fields.valid_to)
    return replace(fields, access_code=normal_code(fields.access_code))


def _code_taken(code: str) -> Conflict:
    return Conflict(
        "is in use by another voucher of this business", subject="access_code", value=code
    )


def list_vouchers(store: Store, *, scope: Scope, query: VoucherQuery) -> VoucherPage:
    with store.read() as conn:
        found, total = voucher_repository.select_voucher_page(
            conn, properties=scope.by_id, query=query
        )
    return VoucherPage(vouchers=found, total=total)


def find_voucher(store: Store, *, scope: Scope, voucher_id: int) -> Credential:
    with store.read() as conn:
        found = voucher_repository.live_vouchers(conn, properties=scope.by_id, ids=[voucher_id])
    if voucher_id not in found:
        raise CredentialNotFound([voucher_id])
    return found[voucher_id]


def _insert(store: Store, vouchers: Sequence[Credential], actor: Actor) -> list[Credential]:
    try:
        with store.write() as conn:
            taken = voucher_repository.codes_in_use(
                conn, property_id=vouchers[0].property.id, codes=[v.value for v in vouchers]
            )
            if taken:
                raise _code_taken(sorted(taken)[0])
            row_ids = repository.insert_credentials(
                conn, [repository.row_of(v, store.sealer) for v in vouchers]
            )
            events.append_many(
                conn,
                [
                    records.credential_created(
                        property_id=v.property.id,
                        credential_uid=v.uid,
                        kind=v.kind.value,
                        token_type=None,
                    )
                    for v in vouchers
                ],
                actor=actor,
                now=vouchers[0].created_utc,
            )
    except IntegrityError:
        raise _code_taken(vouchers[0].value) from None
    return [replace(v, id=row_id) for v, row_id in zip(vouchers, row_ids, strict=True)]


def create_voucher(
    store: Store, *, target: Property, actor: Actor, fields: VoucherFields
) -> Credential:
    fields = _check(fields)
    return _insert(
        store,
        [
            Credential.new_voucher(
                prop=target, fields=fields, actor_label=actor.label, now=utc_now()
            )
        ],
        actor,
    )[0]


def _rewrite(
    store: Store,
    *,
    scope: Scope,
    voucher_ids: Sequence[int],
    change: Callable[[Credential], Credential],
    actor: Actor,
    via: str,
    on_withdrawal: WithdrawalHook,
) -> list[Credential]:
    """Apply ``change`` to live vouchers in one transaction; all of them exist, or nothing.

    The vouchers are read locked (ascending id) and written in that transaction, so ``change``
    always sees the latest committed state: no concurrent top-up, usage report or edit is lost.
    """
    wanted = list(dict.fromkeys(voucher_ids))
    now = utc_now()

    def work(conn: Connection) -> list[Credential]:
        found = voucher_repository.live_vouchers(
            conn, properties=scope.by_id, ids=wanted, lock=True
        )
        missing = [voucher_id for voucher_id in wanted if voucher_id not in found]
        if missing:
            raise CredentialNotFound(missing)
        changed = [
            replace(change(found[i]), updated_utc=now, updated_by=actor.label) for i in wanted
        ]
        renamed = [c for c in changed if code_key(c.value) != code_key(found[c.id].value)]
        if renamed:
            taken = voucher_repository.codes_in_use(
                conn, property_id=renamed[0].property.id, codes=[c.value for c in renamed]
            )
            if taken:
                raise _code_taken(sorted(taken)[0])
        # The code's key is written only when the code changes (repository.py says why).
        renamed_ids = {c.id for c in renamed}
        for columns, part in (
            (repository.VOUCHER_MUTABLE, [c for c in changed if c.id in renamed_ids]),
            (
                repository.VOUCHER_MUTABLE_KEEPING_KEY,
                [c for c in changed if c.id not in renamed_ids],
            ),
        ):
            if part:
                repository.rewrite_credentials(
                    conn,
                    [
                        {"row_id": c.id, **repository.row_of(c, store.sealer)}
                        for c in sorted(part, key=_id)
                    ],
                    columns=columns,
                )
        events.append_many(
            conn,
            [
                (
                    records.credential_deleted
                    if c.deleted_utc is not None
                    else records.credential_updated
                )(
                    property_id=c.property.id,
                    credential_uid=c.uid,
                    changed=records.changed_fields(found[c.id], c, TRACKED_FIELDS[c.kind]),
                    via=via,
                )
                for c in changed
            ],
            actor=actor,
            now=now,
        )
        # A withdrawn voucher's devices go offline now, in this transaction (docs/access.md).
        on_withdrawal(conn, changed, actor=actor, now=now)
        return changed

    try:
        changed = store.write_retrying(work)
    except IntegrityError:
        raise Conflict(
            "is in use by another voucher of this business", subject="access_code"
        ) from None
    return changed


def _id(credential: Credential) -> int:
    return credential.id


def replace_voucher(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    voucher_id: int,
    fields: VoucherFields,
    on_withdrawal: WithdrawalHook,
) -> Credential:
    """Replace every writable property; the budget shift moves ``minutes_left`` too."""
    fields = _check(fields)

    def apply(current: Credential) -> Credential:
        shift = fields.minutes_included - (current.minutes_included or 0)
        return replace(
            current,
            value=fields.access_code,
            description=fields.description,
            minutes_included=fields.minutes_included,
            minutes_left=max(0, (current.minutes_left or 0) + shift),
            user_limit=fields.user_limit,
            valid_from=fields.valid_from,
            valid_to=fields.valid_to,
            system_id=fields.system_id,
        )

    return _rewrite(
        store,
        scope=scope,
        voucher_ids=[voucher_id],
        change=apply,
        actor=actor,
        via="replace",
        on_withdrawal=on_withdrawal,
    )[0]


def delete_voucher(
    store: Store, *, scope: Scope, actor: Actor, voucher_id: int, on_withdrawal: WithdrawalHook
) -> None:
    """Soft delete: the voucher disappears from the dialect and its code is free again."""
    now = utc_now()
    _rewrite(
        store,
        scope=scope,
        voucher_ids=[voucher_id],
        change=lambda current: replace(current, deleted_utc=now),
        actor=actor,
        via="delete",
        on_withdrawal=on_withdrawal,
    )


def reset_minutes(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    voucher_ids: Sequence[int],
    on_withdrawal: WithdrawalHook,
) -> list[Credential]:
    return _rewrite(
        store,
        scope=scope,
        voucher_ids=voucher_ids,
        change=lambda current: replace(current, minutes_left=current.minutes_included),
        actor=actor,
        via="RESET_MINUTES",
        on_withdrawal=on_withdrawal,
    )


def add_minutes(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    voucher_ids: Sequence[int],
    minutes: int,
    on_withdrawal: WithdrawalHook,
) -> list[Credential]:
    """Top up: the budget and what is left both grow by ``minutes``."""
    if not 1 <= minutes <= 10_000_000:
        raise InvalidInput("must be between 1 and 10000000", subject="minutes", value=minutes)

    def top_up(current: Credential) -> Credential:
        included = (current.minutes_included or 0) + minutes
        if included > MINUTES_MAX:  # the column's bound: refused, nothing changed
            raise RuleViolation(
                f"voucher {current.id}: the budget would pass {MINUTES_MAX} minutes",
                subject="minutes",
                value=minutes,
            )
        return replace(
            current,
            minutes_included=included,
            minutes_left=min((current.minutes_left or 0) + minutes, MINUTES_MAX),
        )

    return _rewrite(
        store,
        scope=scope,
        voucher_ids=voucher_ids,
        change=top_up,
        actor=actor,
        via="ADD_MINUTES",
        on_withdrawal=on_withdrawal,
    )


def expire_now(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    voucher_ids: Sequence[int],
    on_withdrawal: WithdrawalHook,
) -> list[Credential]:
    """End validity now (a voucher not yet valid gets an empty window starting now)."""
    now = utc_now()
    return _rewrite(
        store,
        scope=scope,
        voucher_ids=voucher_ids,
        change=lambda current: replace(
            current,
            valid_from=min(current.valid_from, now) if current.valid_from else None,
            valid_to=now,
        ),
        actor=actor,
        via="EXPIRE_NOW",
        on_withdrawal=on_withdrawal,
    )


def extend_validity(
    store: Store,
    *,
    scope: Scope,
    actor: Actor,
    voucher_ids: Sequence[int],
    valid_to: datetime,
    on_withdrawal: WithdrawalHook,
) -> list[Credential]:
    def apply(current: Credential) -> Credential:
        if current.valid_from is not None and valid_to <= current.valid_from:
            raise RuleViolation(
                f"voucher {current.id}: the new end must be after ValidFrom", subject="validity"
            )
        return replace(current, valid_to=valid_to)

    return _rewrite(
        store,
        scope=scope,
        voucher_ids=voucher_ids,
        change=apply,
        actor=actor,
        via="EXTEND_VALIDITY",
        on_withdrawal=on_withdrawal,
    )


def new_codes(count: int) -> list[str]:
    return [
        "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH)) for _ in range(count)
    ]


def bulk_create(
    store: Store,
    *,
    target: Property,
    actor: Actor,
    count: int,
    minutes: int,
    description: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    user_limit: int | None = None,
) -> list[Credential]:
    """``count`` new vouchers of ``minutes`` each, with random codes unique in the business."""
    if not 1 <= count <= MAX_BULK:
        raise InvalidInput(f"must be between 1 and {MAX_BULK}", subject="count", value=count)
    if not 0 <= minutes <= MINUTES_MAX:
        raise InvalidInput(f"must be between 0 and {MINUTES_MAX}", subject="minutes", value=minutes)
    template = VoucherFields(
        access_code="-",
        minutes_included=minutes,
        description=description,
        valid_from=valid_from,
        valid_to=valid_to,
        user_limit=user_limit,
    )
    template = _check(template)
    now = utc_now()
    for _attempt in range(5):
        codes = list(dict.fromkeys(new_codes(count)))
        with store.read() as conn:
            taken = voucher_repository.codes_in_use(conn, property_id=target.id, codes=codes)
        codes = [code for code in codes if code not in taken]
        if len(codes) < count:
            continue
        try:
            return _insert(
                store,
                [
                    Credential.new_voucher(
                        prop=target,
                        fields=replace(template, access_code=code),
                        actor_label=actor.label,
                        now=now,
                    )
                    for code in codes
                ],
                actor,
            )
        except Conflict:
            continue
    raise Conflict("could not find free codes; try again", subject="count")
