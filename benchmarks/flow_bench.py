"""The whole flow, native vs confidential, on dataset G: the issue's two targets.

Runs `seml bench` (dataset G = Iris x 100 = 15,000 rows, both tasks, both modes) and prints
the two figures: whole flow confidential/native (target <= 1.5x, paper 5.8x) and the
confidential whole flow (target < 15 s, paper 237 s). Attestation is simulated.

    .venv/bin/python benchmarks/flow_bench.py [--repetitions 3] [--out DIR] [-- more bench options]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

from seml.bench import read_csv, scenario_stats, targets

SEML = str(Path(sys.executable).parent / "seml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", "-n", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: temp)")
    parser.add_argument("extra", nargs="*", help="more `seml bench` options, after --")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="seml-flow-bench-")) / "results"
    argv = [SEML, "bench", "-n", str(args.repetitions), "--dataset", "G", "--out", str(out)]
    status = subprocess.run([*argv, *args.extra], check=False).returncode
    if not (out / "results.csv").exists():
        return status or 1
    stats = scenario_stats(read_csv(out / "results.csv"))
    for s in stats:
        print(f"{s.mode:>12} {s.task:<14} {s.dataset}: {s.seconds:6.2f} s mean of {s.runs}")
    for t in targets(stats):
        value = "-" if t.value is None else f"{t.value:.2f}{t.unit}"
        print(f"{t.status:>7}  {t.name}: {value} (target <= {t.limit:g}{t.unit}; {t.paper})")
    print(f"full report: {out / 'report.md'}")
    return status


if __name__ == "__main__":
    sys.exit(main())
