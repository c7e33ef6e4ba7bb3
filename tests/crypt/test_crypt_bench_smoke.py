"""Keeps benchmarks/crypt_bench.py from rotting: one tiny run against the real rclone."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "crypt_bench.py"


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone binary not installed")
def test_crypt_bench_runs_and_reports(tmp_path: Path) -> None:
    args = ["--size-mib", "2", "--reps", "1", "--raw-mib", "4", "--dir", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "rclone cryptcheck of seml's encrypted file: passed" in out
    assert out.count("decrypted the original back: yes") == 2
    for op in ("encrypt", "decrypt"):
        assert re.search(rf"{op}: seml/rclone wall time [\d.]+x", out), out
    # the disk's own time for a durable write of the same size, beside rclone's
    assert re.search(r"the disk alone \(dd, direct I/O \+ fsync\) [\d.]+ s, seml [\d.]+x", out)
    assert list(tmp_path.iterdir()) == []  # the work folder is removed
