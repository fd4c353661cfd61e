"""Over HTTP: the real server (``keyledger serve --workers 2``) on loopback, driven by wrk in a
second process (install: ``apt-get install wrk``). Every run first measures ``/healthz`` of the same
app and settings as the ceiling and reports each throughput also as a fraction of it.

This is the first slice of the full harness of the benchmark issue: start-up, ceiling, door
checks, hotspot usage reports and a Mews getAll page; the remaining workloads come next.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import httpx

from benchmarks.access import seed
from keyledger.callers.service import add_access_token, add_integration
from keyledger.settings import Settings
from keyledger.store import Store
from keyledger.store.migrate import upgrade


@dataclass
class Result:
    workload: str
    requests_per_second: float
    ceiling_fraction: float | None
    p50_ms: float
    p99_ms: float
    target: str
    passed: bool | None


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


def run(*, credentials: int, database_url: str | None, seconds: int, connections: int) -> None:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    workdir = Path(tempfile.mkdtemp(prefix="keyledger-http-"))
    results: list[Result] = []

    empty = f"sqlite:///{workdir / 'empty.db'}" if database_url is None else database_url
    process, _, startup = _serve(empty, workdir)
    _stop(process)
    results.append(
        Result(
            "serve to first answered request",
            0,
            None,
            startup * 1000,
            startup * 1000,
            "≤ 2000 ms",
            startup <= 2,
        )
    )

    url = database_url or f"sqlite:///{workdir / 'bench.db'}"
    store = Store(Settings(database_url=url))
    upgrade(store.engine)
    seeded = seed(store, credentials)
    prop, rooms, now = seeded.property, seeded.rooms, seeded.now
    integration = add_integration(store, name="bench")
    token = add_access_token(
        store, client_token=integration.secret, enterprise_ids=[prop.enterprise_id]
    )
    store.dispose()

    process, base, _ = _serve(url, workdir)
    try:
        rng = random.Random(5)
        auth = {"Authorization": f"Bearer {token.secret}"}
        pins = list(range(1, credentials, 2))
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
        vouchers = list(range(0, credentials, 2))
        sessions = []
        for n, code in enumerate(rng.sample(vouchers, min(50, len(vouchers)))):
            started = httpx.post(
                f"{base}/api/v1/hotspot/sessions",
                headers=auth,
                json={
                    "BusinessId": prop.business_id,
                    "AccessCode": f"V{code:09d}",
                    "DeviceId": f"d{n}",
                },
            )
            sessions.append(started.json()["SessionId"])
        ceiling, c50, c99 = _wrk(
            base, "/healthz", None, seconds=seconds, connections=connections, workdir=workdir
        )
        results.append(Result("hello-world ceiling (/healthz)", ceiling, 1.0, c50, c99, "—", None))
        door = _wrk(
            base,
            "/api/v1/access/check",
            _lua("POST", "/api/v1/access/check", checks, token.secret),
            seconds=seconds,
            connections=connections,
            workdir=workdir,
        )
        results.append(
            Result(
                f"door check, {connections} connections",
                door[0],
                door[0] / ceiling,
                door[1],
                door[2],
                "≥ 40 % of ceiling, p99 ≤ 20 ms",
                door[0] / ceiling >= 0.4 and door[2] <= 20,
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
        results.append(
            Result(
                f"hotspot usage report, {connections} connections",
                rate,
                rate / ceiling,
                p50,
                p99,
                "≥ 25 % of ceiling, p99 ≤ 30 ms",
                rate / ceiling >= 0.25 and p99 <= 30,
            )
        )
    finally:
        _stop(process)

    backend = "sqlite" if url.startswith("sqlite") else "postgresql"
    title = (
        f"{backend}, {credentials:,} credentials, {seconds} s per workload, "
        f"{connections} connections"
    )
    print(title)
    print(
        f"{'workload':40} {'req/s':>9} {'ceiling':>8} {'p50 ms':>8} {'p99 ms':>8}  target / result"
    )
    for r in results:
        fraction = "" if r.ceiling_fraction is None else f"{r.ceiling_fraction:.0%}"
        verdict = "" if r.passed is None else ("pass" if r.passed else "FAIL")
        print(
            f"{r.workload:40} {r.requests_per_second:9.0f} {fraction:>8} {r.p50_ms:8.2f} "
            f"{r.p99_ms:8.2f}  {r.target} {verdict}"
        )
    out = Path("benchmarks/results")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"http-{credentials}.json").write_text(
        json.dumps({"title": title, "rows": [asdict(r) for r in results]}, indent=2)
    )
