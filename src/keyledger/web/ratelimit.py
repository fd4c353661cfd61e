"""Sliding-window rate limits (``limits``), in memory or in Redis shared by all workers.

When Redis cannot be reached, or answers later than ``redis_timeout_ms``, a warning is logged,
the failure counted in ``keyledger_rate_limit_errors_total``, and a limiter built with a
``fallback`` storage (the app's limiters, with Redis) counts in this process's memory instead: a
Redis outage must not lock hotel staff out of issuing keys, nor may it switch a limit off (a flood
of requests keeps a worker's loop busy enough for its Redis calls to time out: failing open then
let a caller lift its own limit by sending enough at once). Without a fallback it fails open.
See docs/reliability.md.

Fail fast: every Redis call is bounded by ``redis_timeout_ms`` (connect and each reply, no
retries), and after a failed call the limiter skips Redis for ``redis_pause_seconds`` (a circuit
breaker: each skipped check goes to the fallback at once, counted, not logged), so a Redis that
accepts connections but never answers costs one timeout per pause and worker, not one per check
(docs/architecture.md, "Slow clients and a hung Redis").
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import structlog
from limits import RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from keyledger.observability.metrics import RATE_LIMIT_ERRORS, RATE_LIMITED

log = structlog.get_logger("keyledger.web.ratelimit")


@dataclass(frozen=True, slots=True)
class Limit:
    namespace: str
    amount: int
    window_seconds: int

    @property
    def enabled(self) -> bool:
        return self.amount > 0


def build_storage(redis_url: str | None, key_prefix: str, *, timeout_ms: int = 50) -> Storage:
    if redis_url:
        uri = redis_url if redis_url.startswith("async+") else f"async+{redis_url}"
        timeout = timeout_ms / 1000
        return RedisStorage(
            uri,
            implementation="redispy",
            key_prefix=f"{key_prefix}:limits",
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=Retry(NoBackoff(), 0),  # type: ignore[arg-type]  # a retry would multiply it
        )
    return MemoryStorage()


class RateLimiter:
    """Counts hits per (limit, key) and says how long a refused caller must wait."""

    def __init__(
        self, storage: Storage, *, pause_seconds: float = 1.0, fallback: Storage | None = None
    ) -> None:
        self._storage = storage
        self._strategy = MovingWindowRateLimiter(storage)
        self._pause_seconds = pause_seconds
        self._paused_until = 0.0
        # Where counts go while ``storage`` fails (this process's memory), instead of failing
        # open: a per-worker bound (the limit times the workers, plus what Redis counted).
        self._fallback = MovingWindowRateLimiter(fallback) if fallback is not None else None

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
        if time.monotonic() < self._paused_until:  # storage failed just now: skip it at once
            RATE_LIMIT_ERRORS.labels(namespace=limit.namespace).inc()
            return await self._locally(limit, item, key, count=count)
        try:
            wait = await _run(self._strategy, item, key, count=count)
        except Exception as error:  # noqa: BLE001 - any storage failure: count locally, loudly
            self._paused_until = time.monotonic() + self._pause_seconds
            RATE_LIMIT_ERRORS.labels(namespace=limit.namespace).inc()
            log.warning(
                "rate_limit_storage_unavailable",
                error=type(error).__name__,
                skipped_seconds=self._pause_seconds,
                counted_locally=self._fallback is not None,
            )
            return await self._locally(limit, item, key, count=count)
        if wait is not None:
            RATE_LIMITED.labels(namespace=limit.namespace).inc()
        return wait

    async def _locally(
        self, limit: Limit, item: RateLimitItemPerSecond, key: str, *, count: bool
    ) -> int | None:
        if self._fallback is None:
            return None
        wait = await _run(self._fallback, item, key, count=count)
        if wait is not None:
            RATE_LIMITED.labels(namespace=limit.namespace).inc()
        return wait


async def _run(
    strategy: MovingWindowRateLimiter, item: RateLimitItemPerSecond, key: str, *, count: bool
) -> int | None:
    check = strategy.hit if count else strategy.test
    if await check(item, key):
        return None
    stats = await strategy.get_window_stats(item, key)
    return max(1, math.ceil(stats.reset_time - time.time()))
