"""A worker decides at most ``IN_FLIGHT_LIMIT`` datagrams at once; past it a datagram is dropped
unanswered (the NAS retransmits), so a flood while a group waits for SQLite's write turn is not
held in memory (docs/radius.md, "What is dropped without an answer")."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from keyledger.radius import server


class _Transport:
    """What the endpoint sends (the UDP transport's one method it uses)."""

    def __init__(self) -> None:
        self.sent: list[tuple[bytes, Any]] = []

    def sendto(self, data: bytes, addr: Any) -> None:
        self.sent.append((data, addr))


def test_datagrams_past_the_limit_are_dropped_and_the_rest_answered(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(server, "IN_FLIGHT_LIMIT", 3)
    release = asyncio.Event()
    decided: list[bytes] = []

    async def handler(data: bytes, addr: Any) -> bytes:
        decided.append(data)
        await release.wait()  # as a group waiting for the write turn
        return b"answer-" + data

    async def main() -> tuple[list[bytes], list[tuple[bytes, Any]], int]:
        tasks: set[asyncio.Task[None]] = set()
        endpoint = server._Endpoint(handler, tasks)
        transport = _Transport()
        endpoint.connection_made(transport)  # type: ignore[arg-type]
        for n in range(5):
            endpoint.datagram_received(f"p{n}".encode(), ("192.0.2.1", 1000 + n))
        await asyncio.sleep(0)
        in_flight = len(tasks)
        release.set()
        await asyncio.gather(*tasks)
        endpoint.datagram_received(b"p5", ("192.0.2.1", 1005))  # room again
        await asyncio.gather(*tasks)
        return decided, transport.sent, in_flight

    def dropped() -> float:
        found = REGISTRY.get_sample_value("keyledger_radius_dropped_total", {"listener": "radius"})
        return found or 0.0

    before = dropped()
    decided_packets, sent, in_flight = asyncio.run(main())
    assert dropped() - before == 2  # p3 and p4, counted (keyledger_radius_dropped_total)
    assert in_flight == 3
    assert decided_packets == [b"p0", b"p1", b"p2", b"p5"]
    assert sent == [
        (b"answer-p0", ("192.0.2.1", 1000)),
        (b"answer-p1", ("192.0.2.1", 1001)),
        (b"answer-p2", ("192.0.2.1", 1002)),
        (b"answer-p5", ("192.0.2.1", 1005)),
    ]
