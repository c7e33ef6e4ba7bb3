"""Keeps benchmarks/runtime_bench.py from rotting: one tiny run against a real CAS.

Marked `long` with the other benchmark runs (make test-long, which CI runs after make test)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "runtime_bench.py"


@pytest.mark.long
@pytest.mark.integration
def test_runtime_bench_runs_and_reports_both_targets(tmp_path: Path) -> None:
    args = ("--size-mib", "2", "--repetitions", "1", "--io-repetitions", "1")
    targets = tmp_path / "targets.jsonl"
    result = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SEML_BENCH_TARGETS": str(targets)},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "SIMULATED" in out
    fixed = re.search(r"(PASS|MISS)  fixed overhead (\d+) ms around `true`", out)
    volume = re.search(
        r"(PASS|MISS)  volume --mount auto: (\d+) MiB/s vs plain disk (\d+) MiB/s", out
    )
    assert fixed and volume, out
    assert int(fixed[2]) > 0  # seml run does real work (attest over HTTPS, seal) on top of `true`
    assert int(volume[2]) > 0 and int(volume[3]) > 0
    recorded = {r["key"]: r for r in map(json.loads, targets.read_text().splitlines())}
    assert recorded["run-fixed"]["limit"] == 150 and recorded["run-fixed"]["value"] > 0
    assert recorded["volume-workspace"]["op"] == ">=" and recorded["volume-workspace"]["value"] > 0
    for phase in ("startup", "attest", "unseal", "command", "seal", "exit"):
        assert re.search(rf"^\s+{phase}\s+\d+\.\d ms", out, re.M), f"no {phase} phase in:\n{out}"
    from seml.volume import fuse_available

    if fuse_available() is None:  # FUSE works here: its figure is reported beside the workspace one
        assert re.search(r"(PASS|MISS)  volume --mount fuse: \d+ MiB/s vs plain disk", out), out
        # and the floor: a no-crypto passthrough mount of the same FUSE library, in the same run
        assert re.search(r"FUSE passthrough .* MiB/s .* = \d+% of plain disk", out), out
        assert "FUSE passthrough without crypto" in recorded["volume-fuse"]["note"]
