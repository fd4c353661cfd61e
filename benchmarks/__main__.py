"""``python -m benchmarks {search,access,http,radius,radius-codec} [--database-url URL] …``."""

from __future__ import annotations

import argparse

from benchmarks import access, http, radius, radius_codec, search


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("search", help="Nexudus list queries at a large business")
    run.add_argument("--vouchers", type=int, default=1_000_000)
    run.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    run.add_argument("--quick", action="store_true", help="100,000 vouchers")
    run.add_argument("--repeat", type=int, default=40)
    access_run = commands.add_parser("access", help="door checks and hotspot usage reports")
    access_run.add_argument("--credentials", type=int, default=1_000_000)
    access_run.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    access_run.add_argument("--quick", action="store_true", help="100,000 credentials")
    access_run.add_argument("--repeat", type=int, default=2000)
    http_run = commands.add_parser("http", help="the real server over HTTP, driven by wrk")
    http_run.add_argument("--credentials", type=int, default=1_000_000)
    http_run.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    http_run.add_argument(
        "--quick", action="store_true", help="20,000 credentials, 5 s per wrk run, 10 requests"
    )
    http_run.add_argument("--seconds", type=int, default=20)
    http_run.add_argument("--connections", type=int, default=32)
    http_run.add_argument("--repeat", type=int, default=30, help="requests per latency workload")
    radius_run = commands.add_parser(
        "radius", help="RADIUS through the real server against a bare responder's ceiling"
    )
    radius_run.add_argument("--database-url", default=None, help="default: a temporary SQLite file")
    radius_run.add_argument("--seconds", type=int, default=10)
    radius_run.add_argument("--concurrency", type=int, default=32, help="requests in flight")
    radius_run.add_argument("--vouchers", type=int, default=2000)
    radius_run.add_argument("--quick", action="store_true", help="2 s per run, 8 in flight")
    codec_run = commands.add_parser(
        "radius-codec", help="RADIUS request handling in one process: codec timeit, RadiusServer"
    )
    codec_run.add_argument("--number", type=int, default=5000, help="timeit loops per run")
    codec_run.add_argument("--server", type=int, default=0, help="requests through RadiusServer")
    codec_run.add_argument("--profile", action="store_true", help="cProfile the server run")
    arguments = parser.parse_args()
    if arguments.command == "radius-codec":
        if arguments.server:
            radius_codec.server(arguments.server, arguments.profile)
        else:
            radius_codec.codec(arguments.number)
    if arguments.command == "radius":
        radius.run(
            database_url=arguments.database_url,
            seconds=2 if arguments.quick else arguments.seconds,
            concurrency=8 if arguments.quick else arguments.concurrency,
            vouchers=arguments.vouchers,
        )
    if arguments.command == "access":
        access.run(
            credentials=100_000 if arguments.quick else arguments.credentials,
            database_url=arguments.database_url,
            repeat=arguments.repeat,
        )
    if arguments.command == "http":
        http.run(
            credentials=20_000 if arguments.quick else arguments.credentials,
            database_url=arguments.database_url,
            seconds=5 if arguments.quick else arguments.seconds,
            connections=arguments.connections,
            repeat=10 if arguments.quick else arguments.repeat,
        )
    if arguments.command == "search":
        search.run(
            vouchers=100_000 if arguments.quick else arguments.vouchers,
            database_url=arguments.database_url,
            repeat=arguments.repeat,
        )


main()
