"""The whole flow, native vs confidential, on G (15,000 rows) and L (1.5 M rows): the targets.

Runs `seml bench` on dataset G (Iris x 100, both tasks, both modes, --repetitions times) and
L (Iris x 10,000 = 1,500,000 rows, --large-repetitions times), then prints each scenario's
mean, the project's targets with the paper's figure beside each, and the time and peak RSS of
every phase on L. Attestation is simulated.

Where the confidential mode's extra time goes, per phase group (both tasks added up, means over
the runs): wall and CPU seconds of each mode, the difference, and the number of `seml run`
starts in the group, so the difference per start can be compared with `seml run`'s own fixed
cost (`runtime_bench.py`). CPU seconds are the robust figure when other work shares the
machine; the wall difference beyond the CPU difference is time spent waiting (disk, the
attestation service, other processes).

    .venv/bin/python benchmarks/flow_bench.py [-n 3] [--large-repetitions 1] [--skip-large]
        [--out DIR] [-- more bench options]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

from seml.bench import (
    GROUPS,
    TOTAL,
    Row,
    ScenarioStats,
    TargetRow,
    group_of,
    phase_stats,
    read_csv,
    record_target,
    scenario_stats,
    targets,
)

SEML = str(Path(sys.executable).parent / "seml")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", "-n", type=int, default=3, help="runs on G")
    parser.add_argument("--large-repetitions", type=int, default=1, help="runs on L")
    parser.add_argument("--skip-large", action="store_true", help="G only (minutes less)")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: temp)")
    parser.add_argument("extra", nargs="*", help="more `seml bench` options, after --")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="seml-flow-bench-")) / "results"
    datasets = ["--dataset", "G", *(() if args.skip_large else ("--dataset", "L"))]
    argv = [
        SEML,
        "bench",
        *("-n", str(args.repetitions), "--large-repetitions", str(args.large_repetitions)),
        *datasets,
        *("--out", str(out)),
    ]
    status = subprocess.run([*argv, *args.extra], check=False, stdout=subprocess.DEVNULL).returncode
    if not (out / "results.csv").exists():
        return status or 1
    rows = read_csv(out / "results.csv")
    for s in scenario_stats(rows):
        print(f"{s.mode:>12} {s.task:<14} {s.dataset}: {s.seconds:8.2f} s mean of {s.runs}")
    for t in targets(scenario_stats(rows)):
        value = "-" if t.value is None else f"{t.value:.3f}{t.unit}"
        print(f"{t.status:>7}  {t.name}: {value} (target <= {t.limit:g}{t.unit}; paper: {t.paper})")
    _record(scenario_stats(rows))
    for dataset in dict.fromkeys(s.dataset for s in scenario_stats(rows)):
        print("\n".join(phase_overhead(rows, dataset)))
    large = [p for p in phase_stats(rows) if p.dataset == "L"]
    if large:
        print("phases on L (mean s, peak RSS MB):")
    for p in large:
        print(f"{p.mode:>12} {p.task:<14} {p.group:<8} {p.seconds:8.2f} s {p.peak_rss_mb:7.0f} MB")
    print(f"full report: {out / 'report.md'}")
    return status


def phase_overhead(rows: list[Row], dataset: str) -> list[str]:
    """The per-phase-group table of confidential against native on `dataset` (see the module
    docstring); empty when one mode is missing."""
    sums: dict[tuple[str, str], list[float]] = {}
    for p in phase_stats(rows):
        if p.dataset == dataset:
            wall_cpu = sums.setdefault((p.mode, p.group), [0.0, 0.0])
            wall_cpu[0] += p.seconds
            wall_cpu[1] += p.cpu_seconds
    # Each confidential phase (upload-alice, upload-bob, fetch, ...) is one `seml run`.
    phases = {
        (r.task, r.phase)
        for r in rows
        if r.dataset == dataset and r.mode == "confidential" and r.phase != TOTAL
    }
    starts = Counter(group_of(phase) for _, phase in phases)
    groups = [g for g in GROUPS if ("native", g) in sums and ("confidential", g) in sums]
    if not groups:
        return []
    lines = [
        f"confidential vs native per phase on {dataset} (both tasks, mean s; "
        "extra = confidential - native):",
        f"  {'phase':<8} {'native':>7} {'conf':>7} {'extra':>6} | {'CPU nat':>7} "
        f"{'CPU conf':>8} {'extra':>6} | {'seml run':>8} {'CPU extra/run':>13}",
    ]
    total = [0.0] * 4
    runs = 0
    for g in [*groups, "all"]:
        if g == "all":
            nw, cw, nc, cc = total
            n = runs
        else:
            nw, nc = sums["native", g]
            cw, cc = sums["confidential", g]
            n = starts[g]
            total = [total[0] + nw, total[1] + cw, total[2] + nc, total[3] + cc]
            runs += n
        lines.append(
            f"  {g:<8} {nw:7.2f} {cw:7.2f} {cw - nw:6.2f} | {nc:7.2f} {cc:8.2f} {cc - nc:6.2f} |"
            f" {n:8d} {(cc - nc) / n:13.2f}"
        )
    return lines


def _record(stats: list[ScenarioStats]) -> None:
    """The flow's rows of `make bench`'s table: confidential over native, both tasks' mean
    totals added up (as `seml bench`'s target), with the CPU ratio beside it: CPU seconds are
    far less inflated than wall time when other work shares the machine."""
    for t in targets(stats):
        if t.value is None:
            continue
        dataset = t.name.rsplit(" ", 1)[-1]
        mine = [s for s in stats if s.dataset == dataset]
        conf = [s for s in mine if s.mode == "confidential"]
        native = [s for s in mine if s.mode == "native"]
        if t.unit == "x":
            cpu = sum(s.cpu_seconds for s in conf) / sum(s.cpu_seconds for s in native)
            row = TargetRow(
                key=f"flow-{dataset}",
                what=f"whole flow confidential/native, {dataset} ({mine[0].rows:,} rows)",
                seml=f"{sum(s.seconds for s in conf):.1f} s",
                peer=f"{sum(s.seconds for s in native):.1f} s (native)",
                value=t.value,
                op="<=",
                limit=t.limit,
                unit="x",
                bench="flow_bench.py",
                note=f"CPU ratio {cpu:.2f}x; {min(s.runs for s in mine)} run(s) each",
            )
        else:
            row = TargetRow(
                key="flow-G-seconds",
                what="confidential whole flow, G, slower task (the project's own)",
                seml=f"{t.value:.1f} s",
                peer=f"paper {t.paper}",
                value=t.value,
                op="<=",
                limit=t.limit,
                unit=" s",
                bench="flow_bench.py",
            )
        record_target(row)


if __name__ == "__main__":
    sys.exit(main())
