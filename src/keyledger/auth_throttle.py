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

from collections.abc import Awaitable, Callable
from typing import TypeVar

from keyledger.errors import TooManyFailures, Unauthenticated
from keyledger.hashing import secret_digest
from keyledger.ratelimit import Limit, RateLimiter

Caller = TypeVar("Caller")


class FailedAuthThrottle:
    def __init__(
        self,
        limiter: RateLimiter,
        *,
        per_pair: Limit,
        per_account: Limit,
        per_address: Limit,
        epoch_of: Callable[[str], int],
    ) -> None:
        self._limiter = limiter
        self._per_pair = per_pair
        self._per_account = per_account
        self._per_address = per_address
        self._epoch_of = epoch_of

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
    ) -> Caller:
        """``await authenticate()``'s caller, unless this e-mail has failed too often from this
        address or from everywhere (``TooManyFailures``, the password unchecked)."""
        email = email.strip().lower()
        epoch = self._epoch_of(email)
        pair = secret_digest(f"pair\0{epoch}\0{email}\0{address or ''}")
        account = secret_digest(f"account\0{epoch}\0{email}")
        waits = [
            await self._limiter.blocked(self._per_pair, pair),
            await self._limiter.blocked(self._per_account, account),
        ]
        longest = max((wait for wait in waits if wait is not None), default=None)
        if longest is not None:
            raise TooManyFailures(longest)
        try:
            return await authenticate()
        except Unauthenticated:
            await self._limiter.hit(self._per_pair, pair)
            await self._limiter.hit(self._per_account, account)
            await self._count_address(address)
            raise

    async def _count_address(self, address: str | None) -> None:
        if not address:
            return
        wait = await self._limiter.hit(self._per_address, secret_digest(f"address\0{address}"))
        if wait is not None:
            raise TooManyFailures(wait)
