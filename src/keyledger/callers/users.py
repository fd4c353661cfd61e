"""Nexudus callers: users authenticated by password (HTTP Basic) or by bearer token.

Argon2id makes a password check cost tens of milliseconds on purpose. Clients of the Nexudus API
send Basic credentials with every request, so a successful check is remembered in this process
for ``password_cache_seconds``, keyed by an HMAC of e-mail and password under a random key that
never leaves the process, together with the password hash it was checked against. The user's
row (disabled, API access, roles, password hash) is still read from the store on every request,
so a changed password ends the remembered check at once; only the Argon2 computation is skipped.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import timedelta
from typing import Any

from keyledger.callers import repository
from keyledger.callers.models import IssuedBearer, Membership, UserCaller
from keyledger.clock import utc_now
from keyledger.errors import Unauthenticated
from keyledger.hashing import digests_match, new_api_token, secret_digest, verify_password
from keyledger.store import Store

MAX_SECRET_LENGTH = 1024


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


def _verified_user_id(store: Store, cache: PasswordCache, email: str, password: str) -> int:
    with store.read() as conn:
        user = repository.user_by_email(conn, email)
    if user is None or not verify_password(str(user.password_hash), password):
        raise Unauthenticated("Invalid e-mail or password.")
    cache.remember(email, password, int(user.id), str(user.password_hash))
    return int(user.id)


def authenticate_password(
    store: Store, cache: PasswordCache, *, email: str, password: str
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
    return _caller(store, _verified_user_id(store, cache, email, password))


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


def _issue(
    store: Store, *, user_id: int, access_seconds: int, refresh_seconds: int
) -> IssuedBearer:
    access, refresh = new_api_token(), new_api_token()
    now = utc_now()
    with store.write() as conn:
        repository.insert_bearer(
            conn,
            user_id=user_id,
            access_digest=secret_digest(access),
            refresh_digest=secret_digest(refresh),
            access_expires=now + timedelta(seconds=access_seconds),
            refresh_expires=now + timedelta(seconds=refresh_seconds),
            now=now,
        )
    return IssuedBearer(access_token=access, refresh_token=refresh, expires_in=access_seconds)


def issue_bearer_for_password(
    store: Store,
    cache: PasswordCache,
    *,
    email: str,
    password: str,
    access_seconds: int,
    refresh_seconds: int,
) -> IssuedBearer:
    caller = authenticate_password(store, cache, email=email, password=password)
    return _issue(
        store,
        user_id=caller.user_id,
        access_seconds=access_seconds,
        refresh_seconds=refresh_seconds,
    )


def refresh_bearer(
    store: Store, *, refresh_token: str, access_seconds: int, refresh_seconds: int
) -> IssuedBearer:
    """Exchange a refresh token for a new pair; the old pair stops working (rotation)."""
    if not 0 < len(refresh_token) <= MAX_SECRET_LENGTH:
        raise Unauthenticated("Invalid refresh token.")
    digest = secret_digest(refresh_token)
    with store.write() as conn:
        found = repository.bearer_by_refresh(conn, digest)
        if not _live(found, digest) or found.expires_utc <= utc_now():
            raise Unauthenticated("Invalid or expired refresh token.")
        repository.revoke_bearer(conn, int(found.id), now=utc_now())
        user_id = int(found.user_id)
    _caller(store, user_id)  # a disabled user gets no new token
    return _issue(
        store, user_id=user_id, access_seconds=access_seconds, refresh_seconds=refresh_seconds
    )
