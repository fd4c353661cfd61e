"""Sliding-window rate limits (``limits``), in memory or in Redis shared by all workers.

Fail-open: when Redis cannot be reached the request is let through and a warning is logged and
counted in ``keyledger_rate_limit_errors_total``. A rate limit protects capacity, not
confidentiality (authentication is separate), and a Redis outage must not lock hotel staff out of
issuing keys. See docs/operations.md.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter

from keyledger.observability.metrics import RATE_LIMIT_ERRORS, RATE_LIMITED

log = structlog.get_logger("keyledger.ratelimit")


@dataclass(frozen=True, slots=True)
class Limit:
    namespace: str
    amount: int
    window_seconds: int

    @property
    def enabled(self) -> bool:
        return self.amount > 0


def build_storage(redis_url: str | None, key_prefix: str) -> Storage:
    if redis_url:
        uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
        return RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=f"{key_prefix}:limits",
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
        )
    return MemoryStorage()


class RateLimiter:
    """Counts hits per (limit, key) and says how long a refused caller must wait."""

    def __init__(self, storage: Storage) -> None:
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)

    async def blocked(self, limit: Limit, key: str) -> int | None:
        """Without counting: None when one more hit would be allowed, else the whole seconds
        until it would be."""
        return await self._check(limit, key, count=False)

    async def hit(self, limit: Limit, key: str) -> int | None:
        """Record one hit; None when allowed, else the whole seconds until the next is allowed
        (a refusal is counted in ``keyledger_rate_limited_total``)."""
        return await self._check(limit, key, count=True)

    async def _check(self, limit: Limit, key: str, *, count: bool) -> int | None:
        if not limit.enabled:
            return None
        item = RateLimitItemPerSecond(limit.amount, limit.window_seconds, namespace=limit.namespace)
        try:
            check = self._strategy.hit if count else self._strategy.test
            if await check(item, key):
                return None
            stats = await self._strategy.get_window_stats(item, key)
        except Exception as error:  # noqa: BLE001 - any storage failure: fail open, loudly
            RATE_LIMIT_ERRORS.labels(namespace=limit.namespace).inc()
            log.warning("rate_limit_storage_unavailable", error=type(error).__name__)
            return None
        RATE_LIMITED.labels(namespace=limit.namespace).inc()
        return max(1, math.ceil(stats.reset_time - time.time()))
