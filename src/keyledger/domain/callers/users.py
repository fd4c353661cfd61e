"""Nexudus callers: users, added and changed by the admin CLI and authenticated by password (HTTP
Basic) or by bearer token.

Argon2id makes a password check cost tens of milliseconds on purpose. Clients of the Nexudus API
send Basic credentials with every request, so a successful check is remembered in this process
for ``password_cache_seconds``, keyed by an HMAC of e-mail and password under a random key that
never leaves the process, together with the password hash it was checked against. The user's
row (disabled, API access, roles, password hash) is still read from the store on every request,
so a changed password ends the remembered check at once; only the Argon2 computation is skipped.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.callers import repository
from keyledger.domain.callers.models import (
    MAX_SECRET_LENGTH,
    IssuedBearer,
    Membership,
    Role,
    UserCaller,
)
from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor, EventKind
from keyledger.domain.properties import repository as property_repository
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import Conflict, InvalidInput, PasswordChecksBusy, Unauthenticated
from keyledger.kit.hashing import (
    digests_match,
    dummy_password_hash,
    hash_password,
    new_api_token,
    secret_digest,
    verify_password,
)
from keyledger.kit.inputs import refused_character
from keyledger.store import Store

#: The roles of the Nexudus access-token endpoints, as granted and stored.
ACCESS_TOKEN_ROLES: tuple[str, ...] = tuple(role.value for role in Role)
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class PasswordCache:
    def __init__(self, seconds: int) -> None:
        self._seconds = seconds
        self._key = secrets.token_bytes(32)
        self._verified: dict[bytes, tuple[int, str, float]] = {}

    def _key_of(self, email: str, password: str) -> bytes:
        return hmac.new(self._key, f"{email}\0{password}".encode(), hashlib.sha256).digest()

    def verified(self, email: str, password: str) -> tuple[int, str] | None:
        """The user id and the password hash a remembered check matched, if any."""
        if self._seconds <= 0:
            return None
        found = self._verified.get(self._key_of(email, password))
        if found is None or found[2] < time.monotonic():
            return None
        return found[0], found[1]

    def remember(self, email: str, password: str, user_id: int, password_hash: str) -> None:
        if self._seconds <= 0:
            return
        if len(self._verified) > 10_000:
            self._verified.clear()
        expires = time.monotonic() + self._seconds
        self._verified[self._key_of(email, password)] = (user_id, password_hash, expires)


def _caller(store: Store, user_id: int, *, password_hash: str | None = None) -> UserCaller:
    """The user as a caller; with ``password_hash``, only while the password is still that one
    (else a remembered password check is stale: ``_StaleCheck``)."""
    with store.read() as conn:
        user = repository.user_by_id(conn, user_id)
        if user is None or user.disabled_utc is not None or not user.api_access:
            raise Unauthenticated("The user has no API access.")
        if password_hash is not None and str(user.password_hash) != password_hash:
            raise _StaleCheck
        memberships = repository.memberships_of(conn, user_id)
    return UserCaller(
        user_id=int(user.id),
        email=str(user.email),
        memberships=tuple(
            Membership(property=prop, roles=frozenset(roles))
            for prop, roles in sorted(memberships, key=lambda m: m[0].id)
        ),
    )


class _StaleCheck(Exception):
    """The password changed since a remembered check."""


_NARROW: ContextVar[bool] = ContextVar("keyledger_narrow_password_check", default=False)


class PasswordVerifier:
    """Argon2 checks off the event loop, on a bounded pool of threads of this worker.

    A check costs hundreds of milliseconds of CPU on purpose; on the event loop it held every
    other request of the worker (10 wrong passwords held ``/healthz`` for 2.5 s). argon2-cffi
    releases the GIL while it hashes, so the loop keeps answering. The pool is bounded: at most
    ``threads`` checks run at once per worker, the others wait their turn (a request cancelled at
    its deadline before its turn is never computed). An e-mail that is no user's is checked
    against a dummy hash of the same parameters, so it costs what a wrong password costs and the
    time of an answer does not tell which e-mails are users.

    Two lanes, both bounded (docs/reliability.md, "Password checks under a flood"): checks made
    inside ``narrowed()`` (the brake enters it for a client over its address limit) take turns
    on one slot shared by all of them, so they never hold more than one thread; at most
    ``narrow_queue`` of them wait. Other checks wait for a thread up to ``queue`` deep. Past
    either bound a check is refused at once (``PasswordChecksBusy``), never left to hang."""

    def __init__(self, threads: int, *, queue: int = 32, narrow_queue: int = 8) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="argon2")
        self._dummy = dummy_password_hash()
        self._wide_limit = threads + queue
        self._wide = 0
        self._narrow_limit = 1 + narrow_queue
        self._narrow = 0
        self._narrow_slot = asyncio.Lock()

    @contextmanager
    def narrowed(self) -> Iterator[None]:
        """Checks awaited inside this block (in this task) go through the narrow lane."""
        token = _NARROW.set(True)
        try:
            yield
        finally:
            _NARROW.reset(token)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        stored = self._dummy if password_hash is None else password_hash
        if _NARROW.get():
            if self._narrow >= self._narrow_limit:
                raise PasswordChecksBusy()
            self._narrow += 1
            try:
                async with self._narrow_slot:
                    matched = await self._run(stored, password)
            finally:
                self._narrow -= 1
        else:
            if self._wide >= self._wide_limit:
                raise PasswordChecksBusy()
            self._wide += 1
            try:
                matched = await self._run(stored, password)
            finally:
                self._wide -= 1
        return matched and password_hash is not None

    async def _run(self, stored: str, password: str) -> bool:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, verify_password, stored, password)


async def _verified_user_id(
    store: Store, cache: PasswordCache, verifier: PasswordVerifier, email: str, password: str
) -> int:
    with store.read() as conn:
        user = repository.user_by_email(conn, email)
    stored = None if user is None else str(user.password_hash)
    if not await verifier.verify(stored, password) or user is None:
        raise Unauthenticated("Invalid e-mail or password.")
    cache.remember(email, password, int(user.id), str(user.password_hash))
    return int(user.id)


def remembered_password(
    store: Store, cache: PasswordCache, *, email: str, password: str
) -> UserCaller | None:
    """The caller of a password this worker checked recently (no Argon2), else None: the brake
    lets a remembered password pass without waiting for the e-mail's turn (auth_throttle.py)."""
    email = email.strip().lower()
    remembered = cache.verified(email, password)
    if remembered is None:
        return None
    user_id, password_hash = remembered
    try:
        return _caller(store, user_id, password_hash=password_hash)
    except (_StaleCheck, Unauthenticated):
        return None  # the full path decides (and counts a refusal)


async def authenticate_password(
    store: Store,
    cache: PasswordCache,
    verifier: PasswordVerifier,
    *,
    email: str,
    password: str,
) -> UserCaller:
    email = email.strip().lower()
    if not email or not password or len(email) > 320 or len(password) > MAX_SECRET_LENGTH:
        raise Unauthenticated("Invalid e-mail or password.")
    remembered = cache.verified(email, password)
    if remembered is not None:
        user_id, password_hash = remembered
        try:
            return _caller(store, user_id, password_hash=password_hash)
        except _StaleCheck:
            pass  # checked again below, against the current password
    return _caller(store, await _verified_user_id(store, cache, verifier, email, password))


def auth_failures_epoch(store: Store, email: str) -> int:
    """The failed-login epoch of the user with this e-mail; 0 when no user has it."""
    email = email.strip().lower()
    if not email or len(email) > 320 or refused_character(email) is not None:
        return 0  # no user has it (PostgreSQL would refuse a NUL in the query)
    with store.read() as conn:
        return repository.auth_failures_epoch(conn, email)


def authenticate_bearer(store: Store, *, token: str) -> UserCaller:
    if not 0 < len(token) <= MAX_SECRET_LENGTH:
        raise Unauthenticated("Invalid bearer token.")
    digest = secret_digest(token)
    with store.read() as conn:
        found = repository.bearer_by_access(conn, digest)
    if not _live(found, digest):
        raise Unauthenticated("Invalid bearer token.")
    if found.expires_utc <= utc_now():
        raise Unauthenticated("The bearer token has expired.")
    return _caller(store, int(found.user_id))


def _live(found: Any, digest: str) -> bool:
    """A bearer row that matches ``digest`` and is not revoked."""
    return (
        found is not None and digests_match(str(found.digest), digest) and found.revoked_utc is None
    )


def _insert_pair(
    conn: Connection,
    *,
    user_id: int,
    family_uid: UUID,
    access_seconds: int,
    refresh_seconds: int,
    now: datetime,
) -> IssuedBearer:
    access, refresh = new_api_token(), new_api_token()
    repository.insert_bearer(
        conn,
        user_id=user_id,
        access_digest=secret_digest(access),
        refresh_digest=secret_digest(refresh),
        access_expires=now + timedelta(seconds=access_seconds),
        refresh_expires=now + timedelta(seconds=refresh_seconds),
        now=now,
        family_uid=family_uid,
    )
    return IssuedBearer(access_token=access, refresh_token=refresh, expires_in=access_seconds)


async def issue_bearer_for_password(
    store: Store,
    cache: PasswordCache,
    verifier: PasswordVerifier,
    *,
    email: str,
    password: str,
    access_seconds: int,
    refresh_seconds: int,
) -> IssuedBearer:
    """A new pair, the first of a new family (see ``refresh_bearer``).

    The pair is issued under the user's row lock, and only while the password hash is the one
    that was current before the check: a new password or a disabled user committed while the
    password was being checked refuses the grant instead of issuing a pair the change's
    revocation never saw."""
    with store.read() as conn:
        before = repository.user_by_email(conn, email.strip().lower())
    caller = await authenticate_password(store, cache, verifier, email=email, password=password)
    with store.write() as conn:
        user = repository.lock_user(conn, caller.user_id)
        if (
            before is None
            or user is None
            or user.disabled_utc is not None
            or not user.api_access
            or str(user.password_hash) != str(before.password_hash)
        ):
            raise Unauthenticated("Invalid e-mail or password.")
        return _insert_pair(
            conn,
            user_id=caller.user_id,
            family_uid=uuid.uuid4(),
            access_seconds=access_seconds,
            refresh_seconds=refresh_seconds,
            now=utc_now(),
        )


_INVALID_REFRESH = "Invalid or expired refresh token."


def refresh_bearer(
    store: Store, *, refresh_token: str, access_seconds: int, refresh_seconds: int
) -> IssuedBearer:
    """Exchange a refresh token for a new pair of the same family; the old pair stops working.

    The rotation is a compare-and-set in the transaction that issues the new pair (the user's
    row locked first, then the pair revoked only if still live), so of concurrent refreshes of
    one token exactly one gets a pair. A refresh token that was already rotated when this
    request read it is a replay (OAuth 2.0 Security BCP, refresh token rotation): every pair of
    its family is revoked, an event says so, and the answer is the usual invalid grant. A
    request that read the token live but lost the compare-and-set to a concurrent refresh is
    refused alone (the same client retrying in parallel)."""
    if not 0 < len(refresh_token) <= MAX_SECRET_LENGTH:
        raise Unauthenticated(_INVALID_REFRESH)
    digest = secret_digest(refresh_token)
    now = utc_now()

    def work(conn: Connection) -> IssuedBearer | None:
        found = repository.bearer_by_refresh(conn, digest)
        if found is None or not digests_match(str(found.digest), digest):
            raise Unauthenticated(_INVALID_REFRESH)
        # The user first, in every path: a rotation of this family in flight commits before
        # the family is revoked below, so the pair it issues is revoked too.
        user = repository.lock_user(conn, int(found.user_id))
        if found.revoked_utc is not None:
            _revoke_family(conn, found, now=now)
            return None  # committed; the request is still refused
        if found.expires_utc <= now:
            raise Unauthenticated(_INVALID_REFRESH)
        if user is None or user.disabled_utc is not None or not user.api_access:
            raise Unauthenticated("The user has no API access.")
        if repository.revoke_bearer(conn, int(found.id), now=now) != 1:
            raise Unauthenticated(_INVALID_REFRESH)  # a concurrent refresh rotated it
        return _insert_pair(
            conn,
            user_id=int(found.user_id),
            family_uid=found.family_uid,
            access_seconds=access_seconds,
            refresh_seconds=refresh_seconds,
            now=now,
        )

    issued = store.write_retrying(work)
    if issued is None:
        raise Unauthenticated(_INVALID_REFRESH)
    return issued


def _revoke_family(conn: Connection, found: Any, *, now: datetime) -> None:
    revoked = repository.revoke_family(conn, found.family_uid, now=now)
    user_id = int(found.user_id)
    events.append_many(
        conn,
        [
            records.user_refresh_token_reused(
                property_id=prop.id, user_id=user_id, bearer_tokens_revoked=revoked
            )
            for prop, _ in repository.memberships_of(conn, user_id)
        ],
        actor=Actor.system(),
        now=now,
    )


# Administration (the admin CLI).


def add_user(
    store: Store,
    *,
    email: str,
    password: str,
    business_ids: Sequence[int],
    roles: Sequence[str],
) -> dict[str, object]:
    email = email.strip().lower()
    if not _EMAIL.match(email) or len(email) > 320:
        raise InvalidInput("Give a valid e-mail address.", subject="email")
    _password_allowed(password)
    unknown_roles = [role for role in roles if role not in ACCESS_TOKEN_ROLES]
    if unknown_roles:
        raise InvalidInput(
            f"Unknown role {', '.join(unknown_roles)}; roles are {', '.join(ACCESS_TOKEN_ROLES)}.",
            subject="role",
        )
    if not business_ids:
        raise InvalidInput("Name at least one business.", subject="business")
    password_hash = hash_password(password)
    with store.write() as conn:
        property_ids = []
        for business_id in dict.fromkeys(business_ids):
            found = property_repository.by_business_id(conn, business_id)
            if found is None:
                raise InvalidInput(f"Unknown business {business_id}.", subject="business")
            property_ids.append(found.id)
        if repository.user_id_by_email(conn, email) is not None:
            raise Conflict(f"User {email} exists already.", subject="email")
        user_id = repository.insert_user(
            conn, email=email, password_hash=password_hash, now=utc_now()
        )
        unique_roles = list(dict.fromkeys(roles))
        repository.insert_memberships(
            conn, user_id=user_id, property_ids=property_ids, roles=unique_roles
        )
        events.append_many(
            conn,
            [
                records.user_created(
                    property_id=property_id, user_id=user_id, email=email, roles=unique_roles
                )
                for property_id in property_ids
            ],
            actor=Actor.system(),
            now=utc_now(),
        )
    return {
        "UserId": user_id,
        "Email": email,
        "Businesses": list(dict.fromkeys(business_ids)),
        "Roles": unique_roles,
    }


def import_user(
    conn: Connection,
    *,
    email: str,
    password_hash: str,
    property_ids: Sequence[int],
    roles: Sequence[str],
    now: datetime,
) -> None:
    """A Nexudus user that existed before this store saw it (the demo's), kept if the e-mail
    exists already, in the caller's transaction and without an event. The password comes as
    its Argon2 hash (hashed outside the transaction: it is slow)."""
    if repository.user_id_by_email(conn, email) is not None:
        return
    user_id = repository.insert_user(conn, email=email, password_hash=password_hash, now=now)
    repository.insert_memberships(
        conn, user_id=user_id, property_ids=list(property_ids), roles=list(roles)
    )


#: The event of each change ``_change_user`` makes.
_USER_CHANGED = {
    EventKind.USER_ENABLED: records.user_enabled,
    EventKind.USER_DISABLED: records.user_disabled,
    EventKind.USER_PASSWORD_CHANGED: records.user_password_changed,
}


@dataclass(frozen=True)
class UserChange:
    user_id: int
    email: str
    bearer_tokens_revoked: int


def _password_allowed(password: str) -> None:
    if not 8 <= len(password) <= 1024:
        raise InvalidInput("A password has 8 to 1024 characters.", subject="password")


def _change_user(store: Store, email: str, kind: EventKind, **values: Any) -> UserChange:
    """Change a user's row, revoke its bearer tokens, and record ``kind`` in each of its
    businesses."""
    email = email.strip().lower()
    now = utc_now()
    with store.write() as conn:
        user_id = repository.user_id_by_email(conn, email)
        if user_id is None:
            raise InvalidInput(f"Unknown user {email}.", subject="email")
        repository.change_user(conn, user_id, **values)
        if kind in (EventKind.USER_ENABLED, EventKind.USER_PASSWORD_CHANGED):
            repository.advance_auth_failures_epoch(conn, user_id)  # its failed logins are forgiven
        revoked = repository.revoke_bearers_of(conn, user_id, now=now)
        events.append_many(
            conn,
            [
                _USER_CHANGED[kind](
                    property_id=prop.id,
                    user_id=user_id,
                    email=email,
                    bearer_tokens_revoked=revoked,
                )
                for prop, _ in repository.memberships_of(conn, user_id)
            ],
            actor=Actor.system(),
            now=now,
        )
    return UserChange(user_id=user_id, email=email, bearer_tokens_revoked=revoked)


def set_user_enabled(store: Store, *, email: str, enabled: bool) -> UserChange:
    """Disable a user (Basic and bearer authentication refused at once, its bearer tokens
    revoked) or enable it again."""
    return _change_user(
        store,
        email,
        EventKind.USER_ENABLED if enabled else EventKind.USER_DISABLED,
        disabled_utc=None if enabled else utc_now(),
    )


def set_user_password(store: Store, *, email: str, password: str) -> UserChange:
    """Replace a user's password and revoke its bearer tokens; the old password is refused at
    once, also where a check of it is remembered (``remembered_password``)."""
    _password_allowed(password)
    return _change_user(
        store, email, EventKind.USER_PASSWORD_CHANGED, password_hash=hash_password(password)
    )
