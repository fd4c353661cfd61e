"""The failed-authentication brake: guessing is bounded, and nobody can lock out someone else.

Two kinds of credentials, two policies (docs/reliability.md, "Failed authentication: the policy"):

- **Long random secrets** (Mews ClientToken + AccessToken, the ``/api/v1`` AccessToken, Nexudus
  bearer and refresh tokens) cannot be guessed, so they are checked first: a valid one always
  passes, whatever failed before it from the same address, and costs no count. A refused one
  counts against its client address; past ``per_address`` failures in the window, further
  failures from that address are answered in the dialect's throttling shape (with
  ``Retry-After``) instead of 401.
- **Passwords** (Nexudus Basic and the ``/api/token`` password grant) can be guessed, so the brake
  is asked before the password is checked: past ``per_pair`` failures of one e-mail from one
  address that pair is refused, even with the right password (only that address can have caused
  it); past ``per_account`` failures of one e-mail from every address together, its password
  checks are refused everywhere (the bound on guessing spread over many addresses; someone else
  can cause it only from ``per_account / per_pair`` addresses or more). A failure counts against
  the pair, the e-mail and the address. An unknown e-mail is counted exactly like a known one,
  so the brake does not tell which e-mails are users.

The e-mail's counts are keyed with the user's ``auth_failures_epoch`` (0 for an unknown e-mail),
which ``enable-user`` and ``set-password`` advance: the failures before it no longer count, on
every worker, in every storage. Keys are keyed digests, never secrets, e-mails or passwords.
Counts live in the rate limiter's storage (Redis when configured); when Redis fails, this
worker's memory counts instead (``RateLimiter(fallback=…)``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractContextManager, asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from typing import TypeVar

from keyledger.kit.errors import PasswordChecksBusy, TooManyFailures, Unauthenticated
from keyledger.kit.hashing import secret_digest
from keyledger.store.engine import current_deadline
from keyledger.web.ratelimit import Limit, RateLimiter

Caller = TypeVar("Caller")


def address_key(address: str | None) -> str:
    """The client as the brake counts it: an IPv4 address, or the /64 of an IPv6 one (a host is
    given a whole /64 and picks any address in it, RFC 7421); an IPv4-mapped IPv6 address is its
    IPv4 address. Anything else (a test client's name) as it is."""
    if not address:
        return ""
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


@dataclass
class _Turn:
    """The password checks of one e-mail in this worker, one at a time (``FailedAuthThrottle``)."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0


class FailedAuthThrottle:
    def __init__(
        self,
        limiter: RateLimiter,
        *,
        per_pair: Limit,
        per_account: Limit,
        per_address: Limit,
        epoch_of: Callable[[str], int],
        narrowed: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self._limiter = limiter
        self._per_pair = per_pair
        self._per_account = per_account
        self._per_address = per_address
        self._epoch_of = epoch_of
        # Entered around the password check of a client over its address limit: its Argon2
        # check goes through the verifier's narrow lane (callers/users.py, PasswordVerifier).
        self._narrowed = narrowed
        self._turns: dict[str, _Turn] = {}

    async def secret(self, authenticate: Callable[[], Caller], *, address: str | None) -> Caller:
        """``authenticate()``'s caller; an ``Unauthenticated`` from it counts against the address
        and becomes ``TooManyFailures`` once the address has failed too often."""
        try:
            return authenticate()
        except Unauthenticated:
            await self._count_address(address)
            raise

    async def password(
        self,
        authenticate: Callable[[], Awaitable[Caller]],
        *,
        email: str,
        address: str | None,
        remembered: Callable[[], Caller | None] | None = None,
    ) -> Caller:
        """``await authenticate()``'s caller, unless this e-mail has failed too often from this
        address or from everywhere (``TooManyFailures``, the password unchecked).

        The checks of one e-mail take turns in this worker, and the brake is asked again at the
        start of each turn: of any number of parallel attempts, every one after the limit is
        refused unchecked; the count can overshoot by at most one attempt per worker (the
        workers' turns run side by side). A turn is waited for until the request's deadline
        (then ``PasswordChecksBusy``). The password cache is consulted inside the turn, so a
        client sending several Basic requests at once pays one Argon2 check; and ``remembered()``
        (a password this worker checked recently, no Argon2) passes without waiting for the
        turn, so a client that has logged in is not queued behind guesses at its e-mail."""
        email = email.strip().lower()
        epoch = self._epoch_of(email)
        client = address_key(address)
        pair = secret_digest(f"pair\0{epoch}\0{email}\0{client}")
        account = secret_digest(f"account\0{epoch}\0{email}")
        await self._refuse_if_blocked(pair, account)  # a refused attempt does not queue
        if remembered is not None:
            caller = remembered()
            if caller is not None:
                return caller
        async with self._turn(account):
            await self._refuse_if_blocked(pair, account)
            over = (
                bool(client)
                and (await self._limiter.blocked(self._per_address, _address_digest(client)))
                is not None
            )
            try:
                with self._narrowed() if over else nullcontext():
                    return await authenticate()
            except Unauthenticated:
                await self._limiter.hit(self._per_pair, pair)
                await self._limiter.hit(self._per_account, account)
                await self._count_address(address)
                raise

    async def _refuse_if_blocked(self, pair: str, account: str) -> None:
        waits = [
            await self._limiter.blocked(self._per_pair, pair),
            await self._limiter.blocked(self._per_account, account),
        ]
        longest = max((wait for wait in waits if wait is not None), default=None)
        if longest is not None:
            raise TooManyFailures(longest)

    @asynccontextmanager
    async def _turn(self, key: str) -> AsyncIterator[None]:
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = _Turn()
        turn.users += 1
        try:
            deadline = current_deadline()
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            try:
                async with asyncio.timeout(left):
                    await turn.lock.acquire()
            except TimeoutError:
                raise PasswordChecksBusy() from None
            try:
                yield
            finally:
                turn.lock.release()
        finally:
            turn.users -= 1
            if turn.users == 0:
                del self._turns[key]  # idle: a worker keeps no turn per e-mail ever tried

    async def _count_address(self, address: str | None) -> None:
        client = address_key(address)
        if not client:
            return
        wait = await self._limiter.hit(self._per_address, _address_digest(client))
        if wait is not None:
            raise TooManyFailures(wait)


def _address_digest(client: str) -> str:
    return secret_digest(f"address\0{client}")
