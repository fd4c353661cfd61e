"""RADIUS through the real server (``keyledger serve --workers 2``), driven by a load generator in
another process, each throughput as a fraction of a bare RADIUS responder (pyrad, two processes
on the same ports with SO_REUSEPORT, no store) measured just before and just after it on the same
ports with the same packet mix: the ceiling, so that a drifting machine does not move the ratio.

Workloads: Access-Requests (PAP with Message-Authenticator, a voucher and device out of a pool:
the first of a device opens a session, later ones get it back) and Accounting-Requests
(Interim-Update of open sessions, each one second more than the last of its Acct-Session-Id).
Afterwards the seconds taken off the vouchers are compared with the seconds the acknowledged
Interim-Updates reported: none lost, none counted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from keyledger.domain.credentials import voucher_repository
from keyledger.domain.credentials.models import CredentialKind
from keyledger.domain.credentials.repository import insert_credentials_quietly
from keyledger.domain.nas.service import add_nas, list_nas, remove_nas
from keyledger.domain.properties.service import add_property, list_properties
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade
from keyledger.store.schema import credentials

SECRET = "bench-secret"  # noqa: S105 - the benchmark NAS's shared secret
MINUTES = 100_000


@dataclass
class Result:
    workload: str
    requests_per_second: float
    ceiling_before: float
    ceiling_after: float
    ceiling_fraction: float
    p50_ms: float
    p99_ms: float
    lost: int
    target: str
    passed: bool | None
    ceiling_lost: int = 0  # unanswered in the two ceiling runs (each costs its lane 2 s)


def _udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the bare responder (the ceiling) -----------------------------------------------------------


def responder(auth_port: int, acct_port: int) -> None:
    """A bare RADIUS responder: decode with pyrad, check the Message-Authenticator or the
    accounting authenticator with pyrad, answer a signed Access-Accept (with the attributes
    keyledger sends, pyrad's encoding) or Accounting-Response (keyledger's encoding). No store, no
    rules. pyrad's decoding on purpose: the ceiling of every run recorded in
    benchmarks/README.md, though the server now decodes requests itself."""
    import uvloop
    from pyrad import packet as rp

    from keyledger.radius import packets

    secret = SECRET.encode()
    dictionary = packets.dictionary()

    class Auth(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            request = rp.AuthPacket(packet=data, secret=secret, dict=dictionary)
            if not (request.message_authenticator and request.verify_message_authenticator()):
                return
            reply = request.CreateReply()
            reply["Session-Timeout"] = 3600
            reply["Acct-Interim-Interval"] = 60
            reply["Idle-Timeout"] = 600
            reply["Class"] = str(uuid.uuid4()).encode()
            self.transport.sendto(reply.ReplyPacket(), addr)

    class Acct(Auth):
        def datagram_received(self, data: bytes, addr: Any) -> None:
            request = rp.AcctPacket(packet=data, secret=secret, dict=dictionary)
            if request.VerifyAcctRequest() and (
                not request.message_authenticator or request.verify_message_authenticator()
            ):
                self.transport.sendto(packets.accounting_response(request), addr)

    async def serve() -> None:
        from keyledger.radius.server import udp_socket

        loop = asyncio.get_running_loop()
        # the server's sockets, buffer included (the setting, as the server reads it)
        buffer = Settings().radius_receive_buffer_bytes
        for protocol, port in ((Auth, auth_port), (Acct, acct_port)):
            await loop.create_datagram_endpoint(
                protocol, sock=udp_socket("127.0.0.1", port, receive_buffer=buffer)
            )
        await asyncio.Event().wait()

    uvloop.run(serve())


def _start_responders(auth_port: int, acct_port: int) -> list[subprocess.Popen[bytes]]:
    code = f"from benchmarks.radius import responder; responder({auth_port}, {acct_port})"
    processes = [
        subprocess.Popen([sys.executable, "-c", code], start_new_session=True) for _ in range(2)
    ]
    time.sleep(1.5)
    return processes


# --- the load generator (another process) -------------------------------------------------------


def generate(spec_path: str) -> None:
    """Send ``spec``'s packets with ``concurrency`` sockets, one request in flight each, for
    ``seconds``; write the rate, latencies and what was acknowledged next to the spec."""
    import uvloop

    spec = json.loads(Path(spec_path).read_text())
    result = uvloop.run(_generate(spec))
    Path(spec_path + ".out").write_text(json.dumps(result))


async def _generate(spec: dict[str, Any]) -> dict[str, Any]:
    from pyrad import packet as rp

    from keyledger.radius.packets import dictionary

    loop = asyncio.get_running_loop()
    secret = SECRET.encode()
    kind, port, seconds = spec["kind"], spec["port"], spec["seconds"]
    concurrency = spec["concurrency"]
    latencies: list[float] = []
    lost = 0
    acknowledged = 0  # Interim seconds acknowledged
    warmup_until = loop.time() + 1.0
    deadline = warmup_until + seconds
    counted = 0

    def build(lane: int, sequence: int, state: dict[str, int]) -> bytes:
        if kind == "auth":
            voucher = (lane * 7919 + sequence) % spec["vouchers"]
            request = rp.AuthPacket(
                code=rp.AccessRequest, id=sequence % 256, secret=secret, dict=dictionary()
            )
            code = f"B{voucher:06d}"
            request["User-Name"] = code
            request["User-Password"] = request.PwCrypt(code)
            request["Calling-Station-Id"] = f"dev-{voucher}-{sequence % spec['devices']}"
            request.add_message_authenticator()
            return bytes(request.RequestPacket())
        sessions = spec["sessions"][lane]
        index = sequence % len(sessions)
        acct_id, code, device, session_uid = sessions[index]
        state[acct_id] = state.get(acct_id, 0) + 1
        request = rp.AcctPacket(
            code=rp.AccountingRequest, id=sequence % 256, secret=secret, dict=dictionary()
        )
        request["Acct-Status-Type"] = "Interim-Update"
        request["Acct-Session-Id"] = acct_id
        request["Acct-Session-Time"] = spec["base_time"] + state[acct_id]
        request["Class"] = session_uid.encode()
        request["User-Name"] = code
        request["Calling-Station-Id"] = device
        return bytes(request.RequestPacket())

    class Lane(asyncio.DatagramProtocol):
        def __init__(self) -> None:
            self.waiter: asyncio.Future[bytes] | None = None

        def datagram_received(self, data: bytes, addr: Any) -> None:
            if self.waiter is not None and not self.waiter.done():
                self.waiter.set_result(data)

    async def lane(number: int) -> None:
        nonlocal lost, acknowledged, counted
        transport, protocol = await loop.create_datagram_endpoint(
            Lane, remote_addr=("127.0.0.1", port)
        )
        state: dict[str, int] = {}
        sequence = 0
        try:
            while loop.time() < deadline:
                raw = build(number, sequence, state)
                sequence += 1
                protocol.waiter = loop.create_future()
                started = loop.time()
                transport.sendto(raw)
                try:
                    await asyncio.wait_for(protocol.waiter, 2.0)
                except TimeoutError:
                    lost += 1
                    continue
                if kind == "acct":
                    acknowledged += 1
                if started >= warmup_until:
                    latencies.append((loop.time() - started) * 1000)
                    counted += 1
        finally:
            transport.close()

    await asyncio.gather(*(lane(n) for n in range(concurrency)))
    latencies.sort()
    return {
        "rate": counted / seconds,
        "p50": statistics.median(latencies) if latencies else 0.0,
        "p99": latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else 0.0,
        "lost": lost,
        "acknowledged": acknowledged,
    }


def _load(workdir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    path = workdir / f"load-{uuid.uuid4().hex}.json"
    path.write_text(json.dumps(spec))
    subprocess.run(
        [sys.executable, "-c", f"from benchmarks.radius import generate; generate({str(path)!r})"],
        check=True,
        timeout=spec["seconds"] + 120,
    )
    result: dict[str, Any] = json.loads(Path(str(path) + ".out").read_text())
    return result


# --- the real server ----------------------------------------------------------------------------


def _serve(url: str, auth_port: int, acct_port: int, workdir: Path) -> subprocess.Popen[bytes]:
    port = _tcp_port()
    env = {
        **os.environ,
        "KEYLEDGER_DATABASE_URL": url,
        "KEYLEDGER_MEWS_RATE_LIMIT": "0",
        "KEYLEDGER_NEXUDUS_RATE_LIMIT": "0",
        "KEYLEDGER_AUTH_FAILURES_PER_CALLER": "0",
        "KEYLEDGER_AUTH_FAILURES_PER_ACCOUNT": "0",
        "KEYLEDGER_AUTH_FAILURES_PER_ADDRESS": "0",
        "KEYLEDGER_LOG_LEVEL": "WARNING",
        "KEYLEDGER_RADIUS_AUTH_PORT": str(auth_port),
        "KEYLEDGER_RADIUS_ACCT_PORT": str(acct_port),
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{port}"),
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "keyledger", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # Ready once both workers answer a Status-Server (each worker's listener starts with it).
    from pyrad import packet as rp

    from keyledger.radius.packets import dictionary

    started, answered = time.monotonic(), 0
    while answered < 6:
        if process.poll() is not None or time.monotonic() - started > 90:
            raise RuntimeError("keyledger serve did not start")
        request = rp.AuthPacket(code=rp.StatusServer, secret=SECRET.encode(), dict=dictionary())
        request.add_message_authenticator()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(0.5)
            sock.sendto(request.RequestPacket(), ("127.0.0.1", auth_port))
            try:
                sock.recv(4096)
                answered += 1
            except TimeoutError:
                answered = 0
    return process


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        os.killpg(process.pid, signal.SIGTERM)
    for process in processes:
        process.wait(timeout=30)


def _consumed_seconds(store: Store) -> int:
    with store.read() as conn:
        row = conn.execute(
            select(
                func.sum(credentials.c.minutes_left), func.sum(credentials.c.usage_seconds)
            ).where(credentials.c.kind == CredentialKind.VOUCHER.value)
        ).one()
        total = conn.execute(
            select(func.count()).where(credentials.c.kind == CredentialKind.VOUCHER.value)
        ).scalar_one()
    return int(total) * MINUTES * 60 - (int(row[0] or 0) * 60 - int(row[1] or 0))


def _seed(store: Store, vouchers: int) -> int:
    prop = add_property(store, name=f"Radius bench {uuid.uuid4().hex[:6]}")
    # A database used before (--database-url): the earlier run's NAS holds 127.0.0.1 for its
    # own business, and add-nas refuses an overlap with another business's NAS.
    benches = {p.business_id for p in list_properties(store) if p.name.startswith("Radius bench ")}
    for earlier in list_nas(store):
        if earlier.business_id in benches and str(earlier.network) == "127.0.0.1/32":
            remove_nas(store, nas_id=earlier.id)
    add_nas(store, business_id=prop.business_id, address="127.0.0.1", secret=SECRET)
    now = datetime.now(UTC).replace(microsecond=0)
    rows = []
    for n in range(vouchers):
        code = f"B{n:06d}"
        rows.append(
            {
                "uid": uuid.uuid4(),
                "property_id": prop.id,
                "kind": CredentialKind.VOUCHER.value,
                "value": code,
                "minutes_included": MINUTES,
                "minutes_left": MINUTES,
                "usage_seconds": 0,
                "user_limit": 10,
                "perm_bed": False,
                "perm_room": False,
                "perm_floor": False,
                "perm_building": False,
                "created_utc": now,
                "updated_utc": now,
                "created_by": "System",
                "updated_by": "System",
                **voucher_repository.key_columns(code, None),
            }
        )
    with store.write() as conn:
        insert_credentials_quietly(conn, rows)
    return prop.id


def _open_sessions(store: Store, property_id: int, limit: int) -> list[tuple[str, str, str]]:
    """(code, device, session uid) of open sessions the auth run left (in this run's property:
    a database used before holds earlier runs' too)."""
    from keyledger.store.schema import hotspot_sessions

    with store.read() as conn:
        rows = conn.execute(
            select(credentials.c.value, hotspot_sessions.c.device_id, hotspot_sessions.c.uid)
            .join(credentials, credentials.c.id == hotspot_sessions.c.credential_id)
            .where(hotspot_sessions.c.ended_utc.is_(None), credentials.c.property_id == property_id)
            .limit(limit)
        )
        return [(row[0], row[1], str(uuid.UUID(str(row[2])))) for row in rows]


def run(*, database_url: str | None, seconds: int, concurrency: int, vouchers: int) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="keyledger-radius-"))
    url = database_url or f"sqlite:///{workdir / 'radius.db'}"
    settings = Settings(database_url=url)
    store = Store(settings)
    upgrade(store.engine)
    property_id = _seed(store, vouchers)
    auth_port, acct_port = _udp_port(), _udp_port()
    common = {"seconds": seconds, "concurrency": concurrency, "vouchers": vouchers, "devices": 3}
    auth_spec = {**common, "kind": "auth", "port": auth_port}
    results: list[Result] = []

    def ceiling(spec: dict[str, Any]) -> dict[str, Any]:
        responders = _start_responders(auth_port, acct_port)
        try:
            return _load(workdir, spec)
        finally:
            _stop(responders)

    def server(spec: dict[str, Any]) -> dict[str, Any]:
        process = _serve(url, auth_port, acct_port, workdir)
        try:
            return _load(workdir, spec)
        finally:
            _stop([process])

    before = ceiling(auth_spec)
    auth = server(auth_spec)
    between = ceiling(auth_spec)
    results.append(_row("Access-Request (PAP, Message-Authenticator)", auth, before, between))

    sessions = _open_sessions(store, property_id, 4 * concurrency)
    if not sessions:
        raise RuntimeError("the auth run left no open session")
    lanes = [
        [
            [f"acct-{secrets.token_hex(4)}-{i}", code, device, uid]
            for i, (code, device, uid) in enumerate(sessions)
            if i % concurrency == lane
        ]
        for lane in range(concurrency)
    ]
    lanes = [lane for lane in lanes if lane]
    acct_spec = {
        **common,
        "kind": "acct",
        "port": acct_port,
        "concurrency": len(lanes),
        "sessions": lanes,
        "base_time": 0,
    }
    before_acct = ceiling(acct_spec)
    consumed_before = _consumed_seconds(store)
    acct = server(acct_spec)
    consumed = _consumed_seconds(store) - consumed_before
    after = ceiling(acct_spec)
    row = _row("Accounting-Request (Interim-Update, +1 s)", acct, before_acct, after)
    results.append(row)
    exact = consumed == acct["acknowledged"] and acct["lost"] == 0
    store.dispose()
    _report(results, url=url, seconds=seconds, concurrency=concurrency, vouchers=vouchers)
    print(
        f"seconds acknowledged {acct['acknowledged']}, taken off the vouchers {consumed}, "
        f"unanswered {acct['lost']}: {'exact' if exact else 'MISMATCH'}"
    )
    _write(results, url=url, consumed=consumed, acknowledged=acct["acknowledged"], exact=exact)


def _row(
    name: str, measured: dict[str, Any], before: dict[str, Any], after: dict[str, Any]
) -> Result:
    ceiling = (before["rate"] + after["rate"]) / 2
    fraction = measured["rate"] / ceiling if ceiling else 0.0
    is_auth = name.startswith("Access")
    passed = (fraction >= 0.5 and measured["rate"] >= 1000) if is_auth else None
    return Result(
        workload=name,
        requests_per_second=measured["rate"],
        ceiling_before=before["rate"],
        ceiling_after=after["rate"],
        ceiling_fraction=fraction,
        p50_ms=measured["p50"],
        p99_ms=measured["p99"],
        lost=measured["lost"],
        target="≥ 50 % of ceiling and ≥ 1,000/s" if is_auth else "—",
        passed=passed,
        ceiling_lost=before["lost"] + after["lost"],
    )


def _report(
    results: list[Result], *, url: str, seconds: int, concurrency: int, vouchers: int
) -> None:
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    print(
        f"{backend}, {vouchers:,} vouchers, {seconds} s per run, {concurrency} requests in flight"
    )
    print(
        f"{'workload':44} {'req/s':>7} {'ceiling (before/after)':>24} {'share':>6} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'lost':>5}  target"
    )
    for r in results:
        verdict = "" if r.passed is None else ("pass" if r.passed else "FAIL")
        print(
            f"{r.workload:44} {r.requests_per_second:7.0f} "
            f"{r.ceiling_before:11.0f}/{r.ceiling_after:<12.0f} {r.ceiling_fraction:6.0%} "
            f"{r.p50_ms:7.1f} {r.p99_ms:7.1f} {r.lost:5d}  {r.target} {verdict}"
        )
    print(
        "unanswered in the ceiling runs: "
        + ", ".join(f"{r.workload.split(' ')[0]} {r.ceiling_lost}" for r in results)
    )


def _write(results: list[Result], *, url: str, **extra: Any) -> None:
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"radius-{backend}.json").write_text(
        json.dumps({"rows": [asdict(r) for r in results], **extra}, indent=2)
    )
