"""Failed authentication is throttled per claimed caller and per client address, in every dialect.

Before checking credentials, a dialect asks whether the caller it is told about (an AccessToken,
a Nexudus e-mail, a bearer or refresh token) or the client address has failed too often within
the window; if so it answers its own throttling shape (Mews 429, Nexudus 409, keyledger 429, each
with ``Retry-After``) without looking at the credentials. A failure counts against both keys; a
success counts nothing. Keys are keyed digests, never the secrets or e-mail addresses themselves.
Counts live in the rate limiter's storage (Redis when configured), so they hold across workers
and instances; like rate limits they fail open when Redis is unreachable (docs/architecture.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from keyledger.errors import TooManyFailures, Unauthenticated
from keyledger.hashing import secret_digest
from keyledger.ratelimit import Limit, RateLimiter

Caller = TypeVar("Caller")


class FailedAuthThrottle:
    def __init__(self, limiter: RateLimiter, *, per_caller: Limit, per_address: Limit) -> None:
        self._limiter = limiter
        self._per_caller = per_caller
        self._per_address = per_address

    async def attempt(
        self, authenticate: Callable[[], Caller], *, claimed: str, address: str | None
    ) -> Caller:
        """``authenticate()``'s caller, unless this claimed caller or this address has failed
        too often (``TooManyFailures``); an ``Unauthenticated`` from it counts as a failure."""
        caller_key = secret_digest(claimed)
        keys = [(self._per_caller, caller_key)]
        if address:
            keys.append((self._per_address, address))
        waits = [await self._limiter.blocked(limit, key) for limit, key in keys]
        longest = max((wait for wait in waits if wait is not None), default=None)
        if longest is not None:
            raise TooManyFailures(longest)
        try:
            return authenticate()
        except Unauthenticated:
            for limit, key in keys:
                await self._limiter.hit(limit, key)
            raise
