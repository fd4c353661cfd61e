"""The RADIUS listeners of one worker, its duplicate cache and its Disconnect-Request sender.

Every worker of ``keyledger serve --workers N`` binds the same UDP ports with ``SO_REUSEPORT``;
the kernel spreads NAS by their source address and port, so one NAS socket's retransmits reach
the same worker, whose duplicate cache (RFC 5080) answers them. Decisions go through the
worker's group writer, like the HTTP API's (docs/architecture.md, "Group commit").
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
import sys
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

import structlog
from sqlalchemy.exc import SQLAlchemyError

from keyledger.domain.guessing.models import GuessBudget
from keyledger.domain.nas import service as nas_service
from keyledger.domain.nas.models import DisconnectOutcome, Nas, PendingDisconnect
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import DomainError
from keyledger.kit.settings import Settings
from keyledger.observability.metrics import RADIUS_DROPPED
from keyledger.radius import packets
from keyledger.store import Store
from keyledger.store.writer import GroupWriter

log = structlog.get_logger("keyledger.radius")

Address = tuple[Any, ...]
Handler = Callable[[bytes, Address], Awaitable[bytes | None]]

#: How long a worker trusts its copy of the NAS records (add-nas, remove-nas take effect within).
NAS_CACHE_SECONDS = 2.0
#: How often a worker deletes the guessing counts of past windows (every device that missed has
#: one: ``nas.service.forget_past_guesses``).
GUESSES_FORGOTTEN_EVERY = 300.0
#: Requests remembered for duplicate detection, at most (oldest forgotten first).
DUPLICATES_KEPT = 65_536
#: Datagrams a worker decides at once, at most: past it a datagram is dropped unanswered (the NAS
#: sends it again), as the kernel's socket buffer would drop it if the loop did not read. While a
#: group waits for SQLite's write turn the loop keeps reading, so without a bound a flood of
#: requests would be held in memory (docs/radius.md, "Load").
IN_FLIGHT_LIMIT = 4_096


def plain_host(host: str) -> str:
    """An address as a NAS is recorded and reached: an IPv4-mapped IPv6 address as IPv4."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def _log_fault(event: str, **fields: object) -> None:
    """One log line for the exception being handled, as the HTTP edge logs its faults: a domain
    error (the store unavailable, already logged by the store once) and a database error (its
    text can hold a statement's values) by type only, without a traceback; anything else with
    its traceback (a bug to fix)."""
    error = sys.exc_info()[1]
    if isinstance(error, DomainError):
        log.warning(event, error=type(error).__name__, **fields)
        return
    if isinstance(error, SQLAlchemyError):
        original = getattr(error, "orig", None)
        log.error(
            event,
            error=type(error).__name__,
            database_error=type(original).__name__ if original is not None else None,
            sqlstate=getattr(original, "sqlstate", None),
            **fields,
        )
        return
    log.exception(event, **fields)


class NasDirectory:
    """The NAS records, re-read every ``NAS_CACHE_SECONDS``; a source address finds the NAS of
    the most specific network holding it."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._loaded = -1e9
        self._records: list[Nas] = []
        self._by_id: dict[int, Nas] = {}
        self._by_host: dict[str, Nas | None] = {}  # what ``find`` answered, until the re-read

    def _refresh(self) -> None:
        if time.monotonic() - self._loaded < NAS_CACHE_SECONDS:
            return
        records = nas_service.list_nas(self._store)
        records.sort(key=lambda nas: nas.network.prefixlen, reverse=True)
        self._records, self._by_id = records, {nas.id: nas for nas in records}
        self._by_host = {}
        self._loaded = time.monotonic()

    def find(self, host: str) -> Nas | None:
        self._refresh()
        if host in self._by_host:
            return self._by_host[host]
        found = self._find(host)
        if len(self._by_host) < 65_536:  # bounded: a flood of source addresses is not kept
            self._by_host[host] = found
        return found

    def _find(self, host: str) -> Nas | None:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        for nas in self._records:
            if address.version == nas.network.version and address in nas.network:
                return nas
        return None

    def by_id(self, nas_id: int) -> Nas | None:
        self._refresh()
        return self._by_id.get(nas_id)


class DuplicateCache:
    """RFC 5080 section 2.2.2: a request seen within ``seconds`` (same source, code, identifier
    and authenticator) is decided once; its retransmits get the same answer (or nothing while the
    first is still being decided)."""

    PENDING = b""

    def __init__(self, seconds: float) -> None:
        self._seconds = seconds
        self._seen: OrderedDict[tuple[Any, ...], tuple[float, bytes | None]] = OrderedDict()
        self.hits = 0

    def lookup(self, key: tuple[Any, ...]) -> tuple[bool, bytes | None]:
        """(seen, answer): answer is None when the first is in flight or went unanswered."""
        if self._seconds <= 0:
            return False, None
        now = time.monotonic()
        while self._seen:
            oldest, (at, _) = next(iter(self._seen.items()))
            if now - at <= self._seconds and len(self._seen) <= DUPLICATES_KEPT:
                break
            del self._seen[oldest]
        found = self._seen.get(key)
        if found is None:
            self._seen[key] = (now, None)
            return False, None
        self.hits += 1
        return True, found[1]

    def remember(self, key: tuple[Any, ...], answer: bytes | None) -> None:
        if self._seconds > 0 and key in self._seen:
            self._seen[key] = (self._seen[key][0], answer)

    def forget(self, key: tuple[Any, ...]) -> None:
        """A request that could not be decided (the store failed): its retransmit tries again."""
        self._seen.pop(key, None)


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(
        self, handler: Handler, tasks: set[asyncio.Task[None]], listener: str = "radius"
    ) -> None:
        self._handler = handler
        self._tasks = tasks
        self._dropped = RADIUS_DROPPED.labels(listener=listener)
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)  # uvloop's is no subclass

    def datagram_received(self, data: bytes, addr: Address) -> None:
        if len(self._tasks) >= IN_FLIGHT_LIMIT:
            self._dropped.inc()  # keyledger_radius_dropped_total: visible, unlike the kernel's
            return  # dropped: the NAS retransmits (RFC 2865 section 2.4)
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _answer(self, data: bytes, addr: Address) -> None:
        try:
            answer = await self._handler(data, addr)
        except Exception:  # noqa: BLE001 - logged by _log_fault; a packet never takes the listener down
            _log_fault("radius_packet_failed", peer=addr[0])
            return
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


def udp_socket(host: str, port: int, *, receive_buffer: int = 0) -> socket.socket:
    """A UDP socket bound with SO_REUSEPORT, so every worker binds the same port, asking for a
    receive buffer of ``receive_buffer`` bytes (0: the system's default). Requests wait there
    while the worker commits a group; a buffer that fills drops the rest unanswered (the
    system's ~208 KiB holds ~270 small datagrams: ``KEYLEDGER_RADIUS_RECEIVE_BUFFER_BYTES``)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
    sock = socket.socket(info[0], socket.SOCK_DGRAM)
    if receive_buffer:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        booked = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        # Linux books (and reports) twice what it grants, up to rmem_max; others report it as is
        granted = booked // 2 if sys.platform == "linux" else booked
        if granted < receive_buffer:
            log.warning(
                "radius_receive_buffer_capped",
                asked=receive_buffer,
                granted=granted,
                hint="raise net.core.rmem_max",
            )
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if hasattr(socket, "SO_REUSEPORT"):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(info[4])
    sock.setblocking(False)
    return sock


def coa_socket_ipv6() -> socket.socket | None:
    """An IPv6-only UDP socket on an ephemeral port of every address, to send Disconnect-Requests
    to IPv6 NAS; None (logged once) when the host has no IPv6."""
    try:
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    except OSError:
        log.info("radius_disconnect_ipv6_unavailable")
        return None
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(("::", 0))
        sock.setblocking(False)
    except OSError:
        sock.close()
        log.info("radius_disconnect_ipv6_unavailable")
        return None
    return sock


@dataclass
class _Sent:
    request: Any
    answer: asyncio.Future[bytes]


class RadiusServer:
    """Authentication and accounting listeners, and the Disconnect-Request sender, of one
    worker."""

    def __init__(self, settings: Settings, store: Store, writer: GroupWriter, host: str) -> None:
        self.settings = settings
        self.store = store
        self.writer = writer
        self.host = settings.radius_host or host
        self.directory = NasDirectory(store)
        self.duplicates = DuplicateCache(settings.radius_duplicate_seconds)
        # A device is the caller and the NAS the pool (nas.service.guesser, pool).
        self.budget = GuessBudget(
            per_caller=settings.radius_guess_budget_per_device,
            per_property=settings.radius_guess_budget_per_nas,
            window_seconds=settings.guess_window_seconds,
        )
        self._tasks: set[asyncio.Task[None]] = set()
        self._transports: list[asyncio.BaseTransport] = []
        self._sender: asyncio.Task[None] | None = None
        self._coa: asyncio.DatagramTransport | None = None  # to IPv4 NAS
        self._coa6: asyncio.DatagramTransport | None = None  # to IPv6 NAS, when the host has IPv6
        self._sent: dict[tuple[str, int, int], _Sent] = {}
        self._next_id = 0

    # --- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        listeners: list[tuple[int, Handler, str]] = [
            (self.settings.radius_auth_port, self.authenticate, "auth"),
            (self.settings.radius_acct_port, self.account, "acct"),
        ]
        for port, handler, name in listeners:
            if port:
                transport, _ = await loop.create_datagram_endpoint(
                    partial(_Endpoint, handler, self._tasks, name),
                    sock=udp_socket(
                        self.host,
                        port,
                        receive_buffer=self.settings.radius_receive_buffer_bytes,
                    ),
                )
                self._transports.append(transport)
        # Disconnect-Requests leave from a socket of the NAS address's family: an IPv4 one, and
        # an IPv6 one unless the host has no IPv6 (then an IPv6 NAS's withdrawn sessions end
        # at their timeouts, and its Disconnects are recorded NoAnswer).
        self._coa, _ = await loop.create_datagram_endpoint(
            partial(_Endpoint, self._disconnect_answer, self._tasks),
            local_addr=("0.0.0.0", 0),  # noqa: S104 - replies come from the NAS, wherever it is
        )
        ipv6 = coa_socket_ipv6()
        if ipv6 is not None:
            self._coa6, _ = await loop.create_datagram_endpoint(
                partial(_Endpoint, self._disconnect_answer, self._tasks), sock=ipv6
            )
        self._sender = loop.create_task(self._send_disconnects())

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sender
        for transport in self._transports:
            transport.close()
        for coa in (self._coa, self._coa6):
            if coa is not None:
                coa.close()
        for task in list(self._tasks):
            task.cancel()

    # --- authentication --------------------------------------------------------------------------

    async def authenticate(self, data: bytes, addr: Address) -> bytes | None:
        head = packets.header(data)
        if head is None or head[0] not in (packets.ACCESS_REQUEST, packets.STATUS_SERVER):
            return None
        nas = self.directory.find(addr[0])
        if nas is None:
            return None  # no NAS at this address: dropped, unanswered
        try:
            request = packets.decode_access_request(data, nas.secret)
        except packets.PacketError:
            return None
        if head[0] == packets.STATUS_SERVER:
            authentic = request.message_authenticator and request.verify_message_authenticator()
            return packets.status_accept(request) if authentic else None
        if not packets.authentic_access_request(
            request, require_message_authenticator=nas.require_message_authenticator
        ):
            return None
        if not packets.reply_fits(request, packets.ACCESS_REPLY_ROOM):
            # So much Proxy-State that no answer fits in 4,096 octets: not decided, unanswered
            # (nothing is started that the NAS would never hear of).
            log.warning("radius_reply_too_long", peer=addr[0], nas_id=nas.id)
            return None
        key = (addr[0], addr[1], head[0], head[1], request.authenticator)
        seen, answer = self.duplicates.lookup(key)
        if seen:
            return answer
        try:
            answer = await self._decide(nas, request)
        except BaseException:
            self.duplicates.forget(key)
            raise
        self.duplicates.remember(key, answer)
        return answer

    async def _decide(self, nas: Nas, request: Any) -> bytes:
        settings = self.settings
        device = packets.identifier(request, "Calling-Station-Id", 200)
        code = packets.proven_code(request)
        locks, wanted = nas_service.authorize_locks(nas, code, device)
        login = nas_service.Login(nas, code, device, settings.hotspot_idle_seconds, self.budget)
        done: nas_service.Authorization = await self.writer.run_batched(
            nas_service.authorize, login, locks=locks, wanted=wanted
        )
        decision = done.decision
        if decision.granted and decision.session_uid is not None:
            return packets.accept(
                request,
                session_uid=decision.session_uid,
                seconds_left=decision.seconds_left,
                valid_to=done.valid_to,
                now=done.now,
                interim_seconds=settings.radius_interim_seconds,
                idle_seconds=settings.hotspot_idle_seconds,
            )
        return packets.reject(request, reason=decision.reason.value)

    # --- accounting ------------------------------------------------------------------------------

    async def account(self, data: bytes, addr: Address) -> bytes | None:
        head = packets.header(data)
        if head is None or head[0] != packets.ACCOUNTING_REQUEST:
            return None
        nas = self.directory.find(addr[0])
        if nas is None:
            return None
        try:
            request = packets.decode_accounting_request(data, nas.secret)
        except packets.PacketError:
            return None
        if not packets.authentic_accounting_request(request):
            return None
        key = (addr[0], addr[1], head[0], head[1], request.authenticator)
        seen, answer = self.duplicates.lookup(key)
        if seen:
            return answer
        status = packets.status_type(request)
        acct_session_id = packets.identifier(request, "Acct-Session-Id", 253)
        try:
            if status in ("Start", "Interim-Update", "Stop") and acct_session_id:
                await self._account(nas, request, addr, status, acct_session_id)
            elif status in ("Accounting-On", "Accounting-Off"):
                await self.writer.run(
                    partial(
                        nas_service.account_restart,
                        nas=nas,
                        nas_address=plain_host(str(addr[0])),
                        idle_seconds=self.settings.hotspot_idle_seconds,
                        delay_seconds=packets.integer(request, "Acct-Delay-Time"),
                        event_timestamp=packets.timestamp(request),
                    )
                )
        except BaseException:
            self.duplicates.forget(key)
            raise
        answer = packets.accounting_response(request)
        self.duplicates.remember(key, answer)
        return answer

    async def _account(
        self, nas: Nas, request: Any, addr: Address, status: str, acct_session_id: str
    ) -> None:
        await self.writer.run(
            partial(
                nas_service.account,
                nas=nas,
                nas_address=plain_host(str(addr[0])),
                status=status,
                acct_session_id=acct_session_id,
                session_time=packets.integer(request, "Acct-Session-Time"),
                class_uid=packets.session_class(request),
                user_name=packets.text(request, "User-Name"),
                device_id=packets.identifier(request, "Calling-Station-Id", 200),
                idle_seconds=self.settings.hotspot_idle_seconds,
            )
        )

    # --- disconnect ------------------------------------------------------------------------------

    async def _send_disconnects(self) -> None:
        forgotten_at = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.radius_disconnect_poll_seconds)
            if time.monotonic() - forgotten_at >= GUESSES_FORGOTTEN_EVERY:
                forgotten_at = time.monotonic()
                try:
                    nas_service.forget_past_guesses(self.store, budget=self.budget)
                except Exception:  # noqa: BLE001 - logged by _log_fault; tried again later
                    _log_fault("radius_guess_counts_prune_failed")
            try:
                if not nas_service.has_pending_disconnects(self.store):
                    continue
                claimed = await self.writer.run(
                    partial(
                        nas_service.claim_disconnects,
                        retry_seconds=self.settings.radius_disconnect_timeout_seconds,
                        max_attempts=self.settings.radius_disconnect_attempts,
                    )
                )
            except Exception:  # noqa: BLE001 - logged by _log_fault; the next poll tries again
                _log_fault("radius_disconnect_poll_failed")
                continue
            for pending in claimed:
                task = asyncio.get_running_loop().create_task(self._disconnect(pending))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    def _coa_for(self, address: str) -> asyncio.DatagramTransport | None:
        """The CoA socket that reaches ``address`` (None: none of its family)."""
        try:
            version = ipaddress.ip_address(address).version
        except ValueError:
            return None
        return self._coa if version == 4 else self._coa6

    async def _disconnect(self, pending: PendingDisconnect) -> None:
        nas = self.directory.by_id(pending.nas_id)
        if nas is None:
            await self._settle(pending, None, DisconnectOutcome.NO_ANSWER)
            return
        coa = self._coa_for(pending.nas_address)
        if coa is None:  # an IPv6 NAS on a host without IPv6: no attempt can reach it
            log.warning("radius_disconnect_unsendable", nas=nas.id)
            await self._settle(pending, nas, DisconnectOutcome.NO_ANSWER)
            return
        self._next_id = (self._next_id + 1) % 256
        target = (pending.nas_address, nas.coa_port, self._next_id)
        request = packets.disconnect_request(
            secret=nas.secret,
            identifier=self._next_id,
            user_name=pending.user_name,
            acct_session_id=pending.acct_session_id,
            device_id=pending.calling_station_id,
            now=utc_now(),
        )
        raw = bytes(request.RequestPacket())
        sent = _Sent(request, asyncio.get_running_loop().create_future())
        self._sent[target] = sent
        try:
            try:
                coa.sendto(raw, (pending.nas_address, nas.coa_port))
            except (OSError, ValueError):  # unreachable: sent nowhere, counted as silence
                log.warning("radius_disconnect_unsendable", nas=nas.id)
            reply_data = await asyncio.wait_for(
                sent.answer, self.settings.radius_disconnect_timeout_seconds
            )
        except TimeoutError:
            if pending.attempts >= self.settings.radius_disconnect_attempts:
                await self._settle(pending, nas, DisconnectOutcome.NO_ANSWER)
            return  # else another attempt once the claim runs out
        finally:
            self._sent.pop(target, None)
        reply = packets.decode_reply(request, reply_data)
        cause = packets.integer(reply, "Error-Cause") or None
        outcome = (
            DisconnectOutcome.ACK if reply.code == packets.DISCONNECT_ACK else DisconnectOutcome.NAK
        )
        await self._settle(pending, nas, outcome, cause)

    async def _disconnect_answer(self, data: bytes, addr: Address) -> None:
        head = packets.header(data)
        if head is None or head[0] not in (packets.DISCONNECT_ACK, packets.DISCONNECT_NAK):
            return
        sent = self._sent.get((plain_host(str(addr[0])), int(addr[1]), head[1]))
        if sent is None or sent.answer.done():
            return
        try:
            reply = packets.decode_reply(sent.request, data)
        except packets.PacketError:
            return
        if sent.request.VerifyReply(reply, data):  # signed with the NAS's secret
            sent.answer.set_result(data)

    async def _settle(
        self,
        pending: PendingDisconnect,
        nas: Nas | None,
        outcome: DisconnectOutcome,
        cause: int | None = None,
    ) -> None:
        try:
            await self.writer.run(
                partial(
                    nas_service.settle_disconnect,
                    pending=pending,
                    nas=nas,
                    outcome=outcome,
                    error_cause=cause,
                )
            )
        except Exception:  # noqa: BLE001 - logged by _log_fault; claimed again later
            _log_fault("radius_disconnect_settle_failed", session=str(pending.session_uid))
