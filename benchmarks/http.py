"""Over HTTP: the real server (``keyledger serve --workers 2``) on loopback, driven by wrk in a
second process (install: ``apt-get install wrk``). The ceiling is ``/healthz`` of the same app and
settings under the same wrk load, measured just before and just after every throughput workload
(the run after one workload is the run before the next); each throughput is reported as a
fraction of the mean of its two ceilings, so a machine whose speed drifts during the run does not
move the ratio.

Workloads: start-up on an empty store; on a seeded store (one property, every 20th credential a
voucher, the others Mews door PINs), the ``/healthz`` ceiling, Mews getAll (first page, a page
deep into the store, by ServiceOrderIds), Mews add of 1,000 tokens, Nexudus lists (exact filter,
substring search), door checks and hotspot usage reports under wrk, and the resident memory of
each worker at the end. Latency workloads are sequential requests from one client (``repeat``
times); throughput workloads are wrk with ``connections`` connections.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from sqlalchemy import text

from benchmarks.access import is_voucher, seed, settle
from keyledger.domain.callers.integrations import add_access_token, add_integration
from keyledger.domain.callers.users import ACCESS_TOKEN_ROLES, add_user
from keyledger.kit.clock import format_utc
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade


@dataclass
class Result:
    workload: str
    requests_per_second: float | None
    ceiling_fraction: float | None
    p50_ms: float | None
    p99_ms: float | None
    target: str
    passed: bool | None
    figure: str = ""
    ceiling_before: float | None = None  # /healthz just before a throughput workload, req/s
    ceiling_after: float | None = None  # and just after it


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serve(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = _free_port()
    env = {
        **os.environ,
        "KEYLEDGER_DATABASE_URL": url,
        "KEYLEDGER_MEWS_RATE_LIMIT": "0",
        "KEYLEDGER_NEXUDUS_RATE_LIMIT": "0",
        # Two workers without Redis: the failed-authentication brake off too (serve refuses to
        # start otherwise); the benchmark's requests all carry valid credentials, which the
        # brake never counts.
        "KEYLEDGER_AUTH_FAILURES_PER_CALLER": "0",
        "KEYLEDGER_AUTH_FAILURES_PER_ACCOUNT": "0",
        "KEYLEDGER_AUTH_FAILURES_PER_ADDRESS": "0",
        "KEYLEDGER_LOG_LEVEL": "WARNING",
        "PROMETHEUS_MULTIPROC_DIR": str(workdir / f"metrics-{port}"),
    }
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "keyledger", "serve", "--workers", "2", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    while True:
        try:
            if httpx.get(f"{base}/healthz", timeout=0.5).status_code == 200:
                return process, base, time.monotonic() - started
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() - started > 60:
            raise RuntimeError("keyledger serve did not start")
        time.sleep(0.02)


def _stop(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=30)


def _lua(method: str, path: str, bodies: list[str], token: str) -> str:
    quoted = ",\n".join(json.dumps(body) for body in bodies)
    return f"""
local bodies = {{
{quoted}
}}
local n = 0
wrk.method = "{method}"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
request = function()
  n = n % #bodies + 1
  return wrk.format(nil, "{path}", nil, bodies[n])
end
"""


def _wrk(
    base: str, path: str, script: str | None, *, seconds: int, connections: int, workdir: Path
) -> tuple[float, float, float]:
    command = ["wrk", "-t", "2", "-c", str(connections), "-d", f"{seconds}s", "--latency"]
    if script is not None:
        lua = workdir / f"{uuid.uuid4().hex}.lua"
        lua.write_text(script)
        command += ["-s", str(lua)]
    output = subprocess.run(
        [*command, f"{base}{path}"], capture_output=True, text=True, check=True
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]

    def percentile(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)", output, re.M).groups()  # type: ignore[union-attr]
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    if "Non-2xx" in output:
        raise RuntimeError(f"non-2xx answers during {path}:\n{output}")
    return rate, percentile("50"), percentile("99")


VOUCHER_EVERY = 20
MEWS = "/api/connector/v1/resourceAccessTokens"


def _latency(send: Callable[[int], httpx.Response], repeat: int) -> tuple[float, float]:
    """p50 and p99 (ms) of ``repeat`` sequential requests; every answer must be a 200."""
    samples = []
    for index in range(repeat):
        started = time.perf_counter()
        answer = send(index)
        samples.append((time.perf_counter() - started) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{answer.request.url} answered {answer.status_code}: {answer.text}")
    samples.sort()
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]


def _worker_rss_mb(pid: int) -> list[float]:
    """Resident memory (MB) of the server's worker processes (children of ``pid`` that serve)."""
    sizes = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        command = Path(f"/proc/{child}/cmdline").read_bytes()
        if b"resource_tracker" in command:
            continue
        for line in Path(f"/proc/{child}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def _deep_cursor(store: Store, property_id: int, depth: int) -> str:
    """The uid after which Mews getAll's page starts ``depth`` tokens deep (newest first)."""
    with store.read() as conn:
        uid = conn.execute(
            text(
                "SELECT uid FROM credentials WHERE property_id = :p AND kind = 'reservation' "
                "AND deleted_utc IS NULL ORDER BY created_utc DESC, id DESC LIMIT 1 OFFSET :o"
            ),
            {"p": property_id, "o": depth - 1},
        ).scalar_one()
    return str(uuid.UUID(str(uid)))  # SQLite answers hex, PostgreSQL a UUID


def run(
    *, credentials: int, database_url: str | None, seconds: int, connections: int, repeat: int
) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="keyledger-http-"))
    results: list[Result] = []

    empty = f"sqlite:///{workdir / 'empty.db'}" if database_url is None else database_url
    process, _, startup = _serve(empty, workdir)
    _stop(process)
    results.append(
        Result(
            "serve to first answered request, empty store",
            None,
            None,
            startup * 1000,
            None,
            "≤ 2000 ms",
            startup <= 2,
            f"{startup * 1000:.0f} ms",
        )
    )

    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    store = Store(Settings(database_url=url))
    upgrade(store.engine)
    seeded = seed(store, credentials, voucher_every=VOUCHER_EVERY)
    prop, rooms, now = seeded.property, seeded.rooms, seeded.now
    settle(store)
    integration = add_integration(store, name="bench")
    token = add_access_token(
        store, client_token=integration.secret, enterprise_ids=[prop.enterprise_id]
    )
    password = secrets.token_urlsafe(16)
    add_user(
        store,
        email="bench@example.com",
        password=password,
        business_ids=[prop.business_id],
        roles=ACCESS_TOKEN_ROLES,
    )
    pins = [n for n in range(credentials) if not is_voucher(n, VOUCHER_EVERY)]
    vouchers = [n for n in range(credentials) if is_voucher(n, VOUCHER_EVERY)]
    depth = min(900_000, len(pins) * 9 // 10)
    deep_cursor = _deep_cursor(store, prop.id, depth)
    with store.read() as conn:
        order_ids = [
            str(row[0])
            for row in conn.execute(
                text(
                    "SELECT service_order_id FROM credentials WHERE property_id = :p "
                    "AND kind = 'reservation'"
                ),
                {"p": prop.id},
            )
        ]
    store.dispose()

    process, base, _ = _serve(url, workdir)
    try:
        rng = random.Random(5)
        auth = {"Authorization": f"Bearer {token.secret}"}
        mews_auth = {
            "ClientToken": integration.secret,
            "AccessToken": token.secret,
            "Client": "keyledger-bench 1.0",
        }
        # Idle connections are dropped well before the server's keep-alive timeout (5 s), so a
        # request never meets a connection the server is closing (a reset, seen under load).
        client = httpx.Client(base_url=base, timeout=60, limits=httpx.Limits(keepalive_expiry=1.0))

        def ceiling() -> tuple[float, float, float]:
            return _wrk(
                base, "/healthz", None, seconds=seconds, connections=connections, workdir=workdir
            )

        first_ceiling, c50, c99 = ceiling()
        results.append(
            Result("hello-world ceiling (/healthz)", first_ceiling, 1.0, c50, c99, "—", None)
        )

        def latency_row(
            name: str, target_ms: float, send: Callable[[int], httpx.Response]
        ) -> float:
            p50, p99 = _latency(send, repeat)
            results.append(
                Result(name, None, None, p50, p99, f"p50 ≤ {target_ms:g} ms", p50 <= target_ms)
            )
            return p50

        page = {
            **mews_auth,
            "EnterpriseIds": [str(prop.enterprise_id)],
            "UpdatedUtc": {
                "StartUtc": format_utc(now - timedelta(days=1)),
                "EndUtc": format_utc(now + timedelta(days=1)),
            },
        }
        first = latency_row(
            "Mews getAll, Count 1000, first page",
            60,
            lambda _: client.post(f"{MEWS}/getAll", json={**page, "Limitation": {"Count": 1000}}),
        )
        deep = latency_row(
            f"Mews getAll, Count 1000, {depth:,} deep",
            60,
            lambda _: client.post(
                f"{MEWS}/getAll",
                json={**page, "Limitation": {"Count": 1000, "Cursor": deep_cursor}},
            ),
        )
        results.append(
            Result(
                "  deep page / first page",
                None,
                None,
                None,
                None,
                "≤ 1.2",
                deep <= 1.2 * first,
                f"{deep / first:.2f}",
            )
        )
        latency_row(
            "Mews getAll by 1,000 ServiceOrderIds",
            60,
            lambda _: client.post(
                f"{MEWS}/getAll",
                json={
                    **page,
                    "ServiceOrderIds": rng.sample(order_ids, min(1000, len(order_ids))),
                    "Limitation": {"Count": 1000},
                },
            ),
        )
        nexudus = ("bench@example.com", password)
        latency_row(
            "Nexudus list, size 25, exact filter",
            20,
            lambda index: client.get(
                "/api/spaces/accesstokens",
                params={"AccessToken_MinutesIncluded": 100_000 + index % 8, "size": 25},
                auth=nexudus,
            ),
        )
        latency_row(
            "Nexudus list, size 25, substring AccessCode",
            100,
            lambda _: client.get(
                "/api/spaces/accesstokens",
                params={"AccessToken_AccessCode": f"V{rng.choice(vouchers):09d}"[-6:], "size": 25},
                auth=nexudus,
            ),
        )

        def add_batch(index: int) -> httpx.Response:
            parameters = [
                {
                    "ServiceOrderId": str(uuid.uuid4()),
                    "ResourceId": str(rooms[n % len(rooms)]),
                    "Type": "PinCode",
                    "Value": f"{index:04d}{n:05d}*",
                    "ValidityStartUtc": format_utc(now),
                    "ValidityEndUtc": format_utc(now + timedelta(days=2)),
                    "Permissions": {
                        "Bed": {"Value": False},
                        "Room": {"Value": True},
                        "Floor": {"Value": False},
                        "Building": {"Value": False},
                    },
                }
                for n in range(1000)
            ]
            return client.post(
                f"{MEWS}/add",
                json={
                    **mews_auth,
                    "EnterpriseId": str(prop.enterprise_id),
                    "ResourceAccessTokenParameters": parameters,
                },
            )

        postgres = not url.startswith("sqlite")
        latency_row("Mews add, 1,000 tokens in one request", 150 if postgres else 100, add_batch)

        checks = [
            json.dumps(
                {
                    "ResourceId": str(rooms[n % len(rooms)]),
                    "Type": "PinCode",
                    "Value": f"{n:09d}#",
                    "At": (now + timedelta(hours=1)).isoformat(),
                }
            )
            for n in rng.sample(pins, min(1000, len(pins)))
        ]
        sessions = []
        for n, code in enumerate(rng.sample(vouchers, min(50, len(vouchers)))):
            started = client.post(
                "/api/v1/hotspot/sessions",
                headers=auth,
                json={
                    "BusinessId": prop.business_id,
                    "AccessCode": f"V{code:09d}",
                    "DeviceId": f"d{n}",
                },
            )
            sessions.append(started.json()["SessionId"])
        before_door = ceiling()[0]
        door = _wrk(
            base,
            "/api/v1/access/check",
            _lua("POST", "/api/v1/access/check", checks, token.secret),
            seconds=seconds,
            connections=connections,
            workdir=workdir,
        )
        after_door = ceiling()[0]
        share = door[0] / statistics.mean((before_door, after_door))
        results.append(
            Result(
                f"door check, {connections} connections",
                door[0],
                share,
                door[1],
                door[2],
                "≥ 40 % of ceiling, p99 ≤ 20 ms",
                share >= 0.4 and door[2] <= 20,
                ceiling_before=before_door,
                ceiling_after=after_door,
            )
        )
        # Every report goes to one session, so all of them update one voucher row (worst case).
        usage_path = f"/api/v1/hotspot/sessions/{sessions[0]}/usage"
        rate, p50, p99 = _wrk(
            base,
            usage_path,
            _lua("POST", usage_path, [json.dumps({"ElapsedSeconds": 1})], token.secret),
            seconds=seconds,
            connections=connections,
            workdir=workdir,
        )
        after_usage = ceiling()[0]
        share = rate / statistics.mean((after_door, after_usage))
        results.append(
            Result(
                f"hotspot usage report, {connections} connections",
                rate,
                share,
                p50,
                p99,
                "≥ 25 % of ceiling, p99 ≤ 30 ms",
                share >= 0.25 and p99 <= 30,
                ceiling_before=after_door,
                ceiling_after=after_usage,
            )
        )
        rss = _worker_rss_mb(process.pid)
        results.append(
            Result(
                "resident memory per worker, after the run",
                None,
                None,
                None,
                None,
                "≤ 200 MB",
                bool(rss) and max(rss) <= 200,
                " / ".join(f"{size:.0f} MB" for size in rss),
            )
        )
        client.close()
    finally:
        _stop(process)
    _report(
        results,
        url=url,
        credentials=credentials,
        seconds=seconds,
        connections=connections,
        repeat=repeat,
    )


def _report(
    results: list[Result],
    *,
    url: str,
    credentials: int,
    seconds: int,
    connections: int,
    repeat: int,
) -> None:
    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    title = (
        f"{backend}, {credentials:,} credentials, latency: {repeat} sequential requests, "
        f"throughput: wrk {seconds} s, {connections} connections"
    )
    print(title)
    print(f"{'workload':46} {'figure':52} {'target':32} result")
    for r in results:
        verdict = "" if r.passed is None else ("pass" if r.passed else "FAIL")
        print(f"{r.workload:46} {_figure(r):52} {r.target:32} {verdict}")
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"http-{backend}-{credentials}.json").write_text(
        json.dumps({"title": title, "rows": [asdict(r) for r in results]}, indent=2)
    )


def _figure(r: Result) -> str:
    if r.figure:
        return r.figure
    if r.requests_per_second is not None:
        share = "" if r.ceiling_fraction is None else f" ({r.ceiling_fraction:.0%} of ceiling"
        if r.ceiling_before is not None and r.ceiling_after is not None:
            share += f" {r.ceiling_before:.0f}/{r.ceiling_after:.0f}"
        share += "" if r.ceiling_fraction is None else ")"
        return f"{r.requests_per_second:.0f} req/s{share}, p99 {r.p99_ms:.1f} ms"
    return f"p50 {r.p50_ms:.1f} ms, p99 {r.p99_ms:.1f} ms"
