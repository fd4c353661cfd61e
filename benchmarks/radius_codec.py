"""RADIUS request handling without the network, in one process.

``codec``: ``timeit`` of what the server does with a request before its decision — decode, verify
(Message-Authenticator, or the accounting authenticator), read the attributes it uses (PAP
password, Calling-Station-Id; for accounting the status, session id and time, Class, User-Name)
— with keyledger's decoder and with pyrad's (the code before it), on the packets of
``python -m benchmarks radius``'s load generator.

``server``: the same ``RadiusServer`` and group writer as a worker, on a fresh SQLite file with
the benchmark's vouchers, fed Access-Requests (then Interim-Updates of the sessions opened) 16
per loop turn, without sockets: requests per second, this process's CPU time per request (less
sensitive to other processes on a shared machine) and, with ``--profile``, a cProfile of it.
Uses only what main had too, so it runs against another checkout's ``src`` (PYTHONPATH).
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import tempfile
import time
import timeit
import uuid
from pathlib import Path
from typing import Any

from benchmarks.radius import SECRET

PER_TURN = 16


def _auth_packet(sequence: int) -> bytes:
    from pyrad import packet as rp

    from keyledger.radius.packets import dictionary

    request = rp.AuthPacket(
        code=rp.AccessRequest, id=sequence % 256, secret=SECRET.encode(), dict=dictionary()
    )
    code = f"B{sequence % 2000:06d}"
    request["User-Name"] = code
    request["User-Password"] = request.PwCrypt(code)
    request["Calling-Station-Id"] = f"dev-{sequence % 2000}-{sequence % 3}"
    request.add_message_authenticator()
    return bytes(request.RequestPacket())


def _acct_packet(sequence: int, session: tuple[str, str, str] | None = None) -> bytes:
    from pyrad import packet as rp

    from keyledger.radius.packets import dictionary

    code, device, session_uid = session or (
        f"B{sequence % 2000:06d}",
        f"dev-{sequence % 2000}-0",
        str(uuid.UUID(int=sequence)),
    )
    request = rp.AcctPacket(
        code=rp.AccountingRequest, id=sequence % 256, secret=SECRET.encode(), dict=dictionary()
    )
    request["Acct-Status-Type"] = "Interim-Update"
    request["Acct-Session-Id"] = f"acct-{code}-{device}"
    request["Acct-Session-Time"] = 1 + sequence
    request["Class"] = session_uid.encode()
    request["User-Name"] = code
    request["Calling-Station-Id"] = device
    return bytes(request.RequestPacket())


def codec(number: int) -> None:
    from pyrad import packet as rp

    from keyledger.kit.inputs import code_key
    from keyledger.radius import packets

    secret = SECRET.encode()
    dictionary = packets.dictionary()
    auth, acct = _auth_packet(1), _acct_packet(1)

    def pyrad_auth() -> Any:
        request = rp.AuthPacket(packet=auth, secret=secret, dict=dictionary)
        assert request.message_authenticator and request.verify_message_authenticator()
        user = packets.text(request, "User-Name")
        clear = request.PwDecrypt(packets.first(request, "User-Password"))
        assert code_key(clear.strip()) == code_key(user.strip())
        return packets.text(request, "Calling-Station-Id")

    def ours_auth() -> Any:
        request = packets.decode_access_request(auth, secret)
        assert packets.authentic_access_request(request, require_message_authenticator=True)
        assert packets.proven_code(request)
        return packets.text(request, "Calling-Station-Id")

    def acct_reads(request: Any) -> Any:
        return (
            packets.status_type(request),
            packets.text(request, "Acct-Session-Id"),
            packets.integer(request, "Acct-Session-Time"),
            packets.session_class(request),
            packets.text(request, "User-Name"),
            packets.text(request, "Calling-Station-Id"),
        )

    def pyrad_acct() -> Any:
        request = rp.AcctPacket(packet=acct, secret=secret, dict=dictionary)
        assert request.VerifyAcctRequest()
        return acct_reads(request)

    def ours_acct() -> Any:
        request = packets.decode_accounting_request(acct, secret)
        assert packets.authentic_accounting_request(request)
        return acct_reads(request)

    assert pyrad_acct() == ours_acct()
    assert pyrad_auth() == ours_auth()
    print(f"µs per request, best of 7 runs of {number:,} (one process)")
    for name, pyrad_way, our_way in [
        ("Access-Request (PAP, Message-Authenticator)", pyrad_auth, ours_auth),
        ("Accounting-Request (Interim-Update, Class)", pyrad_acct, ours_acct),
    ]:
        theirs = min(timeit.repeat(pyrad_way, number=number, repeat=7)) / number * 1e6
        mine = min(timeit.repeat(our_way, number=number, repeat=7)) / number * 1e6
        print(f"{name:46} pyrad {theirs:6.1f}   keyledger {mine:6.1f}   ({theirs / mine:.1f}x)")


def server(requests: int, profile: bool) -> None:
    import keyledger
    from benchmarks.radius import _open_sessions, _seed
    from keyledger.kit.settings import Settings
    from keyledger.radius.server import RadiusServer
    from keyledger.store import Store
    from keyledger.store.migrate import upgrade
    from keyledger.store.writer import GroupWriter

    workdir = Path(tempfile.mkdtemp(prefix="keyledger-radius-codec-"))
    settings = Settings(database_url=f"sqlite:///{workdir / 'radius.db'}")
    store = Store(settings)
    upgrade(store.engine)
    property_id = _seed(store, 2000)
    print(f"keyledger from {Path(keyledger.__file__).parent}, {requests:,} requests each")

    async def feed(handler: Any, datagrams: list[bytes]) -> tuple[float, float, int]:
        """Wall-clock and CPU seconds of this process, and how many were answered."""
        answered = 0
        started, cpu = time.perf_counter(), time.process_time()
        for at in range(0, len(datagrams), PER_TURN):
            answers = await asyncio.gather(
                *(
                    handler(data, ("127.0.0.1", 40000 + n))
                    for n, data in enumerate(datagrams[at : at + PER_TURN])
                )
            )
            answered += sum(answer is not None for answer in answers)
        return time.perf_counter() - started, time.process_time() - cpu, answered

    async def main() -> None:
        radius = RadiusServer(settings, store, GroupWriter(store), host="127.0.0.1")
        auth = [_auth_packet(n) for n in range(requests)]
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        seconds, cpu, answered = await feed(radius.authenticate, auth)
        print(
            f"Access-Request      {requests / seconds:6.0f}/s  {cpu / requests * 1e6:6.0f} µs CPU"
            f" a request  answered {answered:,}"
        )
        sessions = _open_sessions(store, property_id, 500)
        acct = [_acct_packet(n, sessions[n % len(sessions)]) for n in range(requests)]
        seconds, cpu, answered = await feed(radius.account, acct)
        print(
            f"Accounting-Request  {requests / seconds:6.0f}/s  {cpu / requests * 1e6:6.0f} µs CPU"
            f" a request  answered {answered:,}"
        )
        if profiler:
            profiler.disable()
            stats = pstats.Stats(profiler)
            stats.sort_stats("cumulative").print_stats(35)

    asyncio.run(main())
    store.dispose()
