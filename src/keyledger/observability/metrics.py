"""Prometheus metrics. With several workers, ``keyledger serve`` sets PROMETHEUS_MULTIPROC_DIR
before any worker starts so that every process writes its samples where ``/metrics`` reads them."""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

REQUESTS = Counter(
    "keyledger_requests_total",
    "HTTP requests answered, by dialect, operation and status.",
    ["dialect", "operation", "status"],
)
LATENCY = Histogram(
    "keyledger_request_duration_seconds",
    "Time from request start to the end of the response, by dialect and operation.",
    ["dialect", "operation"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
RATE_LIMITED = Counter(
    "keyledger_rate_limited_total", "Requests refused by a rate limit.", ["namespace"]
)
RATE_LIMIT_ERRORS = Counter(
    "keyledger_rate_limit_errors_total",
    "Rate-limit checks that failed (storage unreachable) and let the request through.",
    ["namespace"],
)
RADIUS_DROPPED = Counter(
    "keyledger_radius_dropped_total",
    "RADIUS datagrams a worker dropped unread because it was deciding IN_FLIGHT_LIMIT already.",
    ["listener"],
)


def render_latest() -> tuple[bytes, str]:
    """The exposition text of every process of this deployment."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
