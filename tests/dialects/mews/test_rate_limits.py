"""The Mews rate limit: sliding window, shared through Redis, counted in the worker's memory while
Redis fails."""

from __future__ import annotations

import re
import time
import uuid

from tests.support import (
    DatabaseFactory,
    Tenant,
    assert_error,
    deploy,
    make_tenant,
    two_instances_sharing_redis,
)


def _probe(tenant: Tenant) -> int:
    return tenant.mews(
        "getAll", ServiceOrderIds=[str(uuid.uuid4())], Limitation={"Count": 1}
    ).status_code


def test_the_window_slides(sqlite_databases: DatabaseFactory) -> None:
    deployment = deploy(sqlite_databases.new_url(), mews_rate_limit=3, mews_rate_window_seconds=2)
    try:
        tenant = make_tenant(deployment)
        assert [_probe(tenant) for _ in range(3)] == [200, 200, 200]
        refused = tenant.mews(
            "getAll", ServiceOrderIds=[str(uuid.uuid4())], Limitation={"Count": 1}
        )
        assert_error(refused, 429, "Too many requests")
        assert refused.headers["Retry-After"] in {"1", "2"}
        time.sleep(2.1)
        assert _probe(tenant) == 200
    finally:
        deployment.close()


def test_two_instances_share_the_limit_through_redis(databases: DatabaseFactory) -> None:
    with two_instances_sharing_redis(databases.new_url(), mews_rate_limit=6) as (first, second):
        tenant = make_tenant(first)
        via_second = Tenant(**{**tenant.__dict__, "http": second.http})
        statuses = [_probe(tenant if n % 2 else via_second) for n in range(10)]
        assert statuses.count(200) == 6
        assert statuses.count(429) == 4


def test_unreachable_redis_leaves_the_limit_counting_in_memory(
    sqlite_databases: DatabaseFactory,
) -> None:
    """Redis down: requests under the limit go on (a front desk keeps issuing keys), those over
    it are refused as with Redis (the limit is not switched off), each failure counted."""
    deployment = deploy(
        sqlite_databases.new_url(), redis_url="redis://127.0.0.1:9/0", mews_rate_limit=2
    )
    try:
        tenant = make_tenant(deployment)
        assert [_probe(tenant) for _ in range(4)] == [200, 200, 429, 429]
        metrics = deployment.http.get("/metrics").text
        found = re.search(
            r'keyledger_rate_limit_errors_total\{namespace="mews"\} ([\d.]+)', metrics
        )
        assert found is not None
        assert float(found.group(1)) >= 4
    finally:
        deployment.close()
