"""The benchmark harness runs (on tiny data; the real runs are in benchmarks/README.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support import bench

pytestmark = pytest.mark.slow  # runs the benchmark harness as subprocesses


def test_search_benchmark_runs_and_reports(tmp_path: Path) -> None:
    done = bench(tmp_path, "search", "--vouchers", "300", "--repeat", "3")
    assert done.returncode == 0, done.stderr
    assert "300 vouchers in one business" in done.stdout
    assert "substring: AccessToken_AccessCode, 4 chars (trigram index)" in done.stdout
    assert "substring with _ in the term (SQLite: LIKE scan)" in done.stdout
    report = json.loads((tmp_path / "benchmarks/results/search-sqlite-300.json").read_text())
    assert len(report["rows"]) == 6
    assert all(row["p50_ms"] > 0 for row in report["rows"])


def test_access_benchmark_runs_and_reports(tmp_path: Path) -> None:
    done = bench(tmp_path, "access", "--credentials", "400", "--repeat", "20")
    assert done.returncode == 0, done.stderr
    assert "door check (granted, room reader, tree of 202)" in done.stdout
    report = json.loads((tmp_path / "benchmarks/results/access-sqlite-400.json").read_text())
    assert [row["workload"] for row in report["rows"]] == [
        "door check (granted, room reader, tree of 202)",
        "hotspot usage report (7 s)",
    ]
    assert all(row["per_second"] > 0 for row in report["rows"])


def test_http_harness_runs_the_real_server_under_wrk(tmp_path: Path) -> None:
    from tests.support import need

    need(shutil.which("wrk"), "the HTTP harness needs wrk (apt-get install wrk; .ci/run does)")
    done = bench(
        tmp_path,
        "http",
        *("--credentials", "400", "--seconds", "1", "--connections", "4", "--repeat", "2"),
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((tmp_path / "benchmarks/results/http-sqlite-400.json").read_text())
    rows = {row["workload"]: row for row in report["rows"]}
    assert list(rows) == [
        "serve to first answered request, empty store",
        "hello-world ceiling (/healthz)",
        "Mews getAll, Count 1000, first page",
        "Mews getAll, Count 1000, 342 deep",
        "  deep page / first page",
        "Mews getAll by 1,000 ServiceOrderIds",
        "Nexudus list, size 25, exact filter",
        "Nexudus list, size 25, substring AccessCode",
        "Mews add, 1,000 tokens in one request",
        "door check, 4 connections",
        "hotspot usage report, 4 connections",
        "resident memory per worker, after the run",
    ]
    assert rows["hello-world ceiling (/healthz)"]["requests_per_second"] > 0
    assert rows["door check, 4 connections"]["requests_per_second"] > 0
    for workload in ("door check, 4 connections", "hotspot usage report, 4 connections"):
        row = rows[workload]
        assert row["ceiling_before"] > 0 and row["ceiling_after"] > 0, row
        ceiling = (row["ceiling_before"] + row["ceiling_after"]) / 2
        assert abs(row["ceiling_fraction"] - row["requests_per_second"] / ceiling) < 1e-9, row
    # the ceiling after the door checks is the one before the usage reports
    assert (
        rows["door check, 4 connections"]["ceiling_after"]
        == rows["hotspot usage report, 4 connections"]["ceiling_before"]
    )
    assert rows["Mews add, 1,000 tokens in one request"]["p50_ms"] > 0
    assert rows["resident memory per worker, after the run"]["figure"].endswith("MB")
    assert "hello-world ceiling" in done.stdout
