"""The RADIUS sockets ask the kernel for ``KEYLEDGER_RADIUS_RECEIVE_BUFFER_BYTES`` of receive
buffer, so a burst that arrives while a worker commits a group waits there instead of being
dropped unanswered (the system's default buffer holds a few hundred requests)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from keyledger.kit.settings import Settings
from keyledger.radius.server import RadiusServer, udp_socket
from keyledger.store import Store
from keyledger.store.writer import GroupWriter
from tests.radius.support import free_udp_port

#: Small datagrams take ~0.8 KiB of buffer each: this many is over three times what the system's
#: default buffer holds, and under the loopback's backlog (net.core.netdev_max_backlog, 1000).
BURST = 900
ASKED = 4 * 1024 * 1024


def _sysctl(name: str) -> int:
    path = Path("/proc/sys/net/core") / name
    if not path.exists():  # e.g. a container's network namespace on an older kernel
        pytest.skip(f"net.core.{name} cannot be read here")
    return int(path.read_text())


def _rmem_max() -> int:
    return _sysctl("rmem_max")


def _burst_into(listener: socket.socket) -> int:
    """Send ``BURST`` datagrams at ``listener`` while nothing reads it; how many it then holds."""
    sender = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        for n in range(BURST):
            sender.sendto(n.to_bytes(4, "big") + bytes(60), listener.getsockname())
            if n % 100 == 99:
                time.sleep(0.002)  # let the loopback deliver what it holds
    finally:
        sender.close()
    time.sleep(0.05)
    received = 0
    while True:
        try:
            listener.recv(4096)
        except BlockingIOError:
            return received
        received += 1


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket]]:
    asked = udp_socket("127.0.0.1", 0, receive_buffer=ASKED)
    default = udp_socket("127.0.0.1", 0)
    yield asked, default
    asked.close()
    default.close()


def test_a_burst_waits_in_the_buffer_asked_for(
    sockets: tuple[socket.socket, socket.socket],
) -> None:
    if _rmem_max() < 2 * BURST * 1024:
        pytest.skip("net.core.rmem_max caps the buffer below the burst on this host")
    asked, default = sockets
    # Linux books twice what it is asked (its own overhead), up to rmem_max
    assert asked.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * min(ASKED, _rmem_max())
    assert _burst_into(asked) == BURST
    if _sysctl("rmem_default") < 512 * 1024:  # a host whose default holds the burst: nothing
        assert _burst_into(default) < BURST  # the system's default drops part of the same burst


def test_a_buffer_the_kernel_caps_is_logged() -> None:
    with capture_logs() as logs:
        sock = udp_socket("127.0.0.1", 0, receive_buffer=256 * 1024 * 1024)
        sock.close()
    capped = [entry for entry in logs if entry["event"] == "radius_receive_buffer_capped"]
    assert len(capped) == 1
    assert capped[0]["asked"] == 256 * 1024 * 1024
    assert capped[0]["granted"] == min(256 * 1024 * 1024, _rmem_max())


@pytest.mark.parametrize("value", [1, 65535, 256 * 1024 * 1024 + 1])
def test_a_buffer_of_a_few_datagrams_is_refused(value: int) -> None:
    with pytest.raises(ValidationError, match="radius_receive_buffer_bytes"):
        Settings(radius_receive_buffer_bytes=value)
    assert Settings(radius_receive_buffer_bytes=0).radius_receive_buffer_bytes == 0
    assert Settings(radius_receive_buffer_bytes=65536).radius_receive_buffer_bytes == 65536


def test_the_server_asks_for_the_setting(tmp_path: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'buffer.db'}",
        radius_auth_port=free_udp_port(),
        radius_acct_port=free_udp_port(),
        radius_receive_buffer_bytes=1024 * 1024,
    )

    async def buffers() -> list[int]:
        store = Store(settings)
        radius = RadiusServer(settings, store, GroupWriter(store), host="127.0.0.1")
        await radius.start()
        try:
            return [
                transport.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                for transport in radius._transports
            ]
        finally:
            await radius.stop()
            store.dispose()

    assert asyncio.run(buffers()) == [2 * min(1024 * 1024, _rmem_max())] * 2
