"""`python -m benchmarks radius` runs (on tiny data; the real runs are in benchmarks/README.md)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import bench

pytestmark = pytest.mark.slow


def test_radius_benchmark_runs_and_counts_every_second(tmp_path: Path) -> None:
    done = bench(tmp_path, "radius", "--seconds", "1", "--concurrency", "2", "--vouchers", "20")
    assert done.returncode == 0, done.stderr
    assert "exact" in done.stdout, done.stdout
    report = json.loads((tmp_path / "benchmarks/results/radius-sqlite.json").read_text())
    assert [row["workload"][:14] for row in report["rows"]] == ["Access-Request", "Accounting-Req"]
    assert all(row["requests_per_second"] > 0 for row in report["rows"])
    assert report["exact"] is True
