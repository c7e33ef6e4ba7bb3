"""Keeps benchmarks/sync_bench.py and model_bench.py from rotting: tiny runs, real peers.

Minutes of work each: marked `long` (make test-long, which CI runs after make test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.mark.long
@pytest.mark.integration
@pytest.mark.timeout(900)
def test_sync_bench_reports_every_shape_backend_and_way(tmp_path: Path) -> None:
    targets = tmp_path / "targets.jsonl"
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / "sync_bench.py"), "--size-mib", "2"],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SEML_BENCH_TARGETS": str(targets)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rows = re.findall(
        r"^(large|large\+small|mixed)\s+(file://|SeaweedFS)\s+(push|pull)\s+[\d.]+\s+[\d.]+\s+"
        r"[\d.]+\s+<= (0\.7|0\.8) (ok|MISS)",
        result.stdout,
        re.M,
    )
    assert len(rows) == 12, result.stdout  # 3 shapes x 2 backends x 2 ways, each with a target
    assert {(way, target) for _, _, way, target, _ in rows} == {("push", "0.7"), ("pull", "0.8")}
    assert "memory, file:// pull:" in result.stdout
    # make bench's closing table reads these rows: one per shape, backend and way, plus memory
    recorded = [json.loads(line) for line in targets.read_text().splitlines()]
    ways = [r for r in recorded if r["key"] in ("push", "pull")]
    assert len(ways) == 12
    assert {(r["key"], r["limit"]) for r in ways} == {("push", 0.7), ("pull", 0.8)}
    assert all(r["value"] > 0 and r["bench"] == "sync_bench.py" for r in ways)
    assert sum(r["key"] == "memory" for r in recorded) == 4  # 2 backends x 2 ways


@pytest.mark.long
@pytest.mark.integration
@pytest.mark.timeout(900)  # four interpreter starts with scikit-learn: minutes on a busy machine
def test_model_bench_compares_the_runner_with_a_bare_script() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "model_bench.py"),
            *("-n", "1", "--rows", "5", "--scale", "1"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(
        r"(PASS|MISS)  seml flow predict / bare skops\+scikit-learn script: ([\d.]+)x "
        r"\(seml ([\d.]+) s, bare ([\d.]+) s\); target <= 1.3x",
        result.stdout,
    )
    assert found, result.stdout
    assert float(found[3]) > 0 and float(found[4]) > 0
