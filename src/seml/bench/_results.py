"""Benchmark rows and their aggregation: pure, no I/O except the CSV writer/reader."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import mean, median

from seml._fs import write_atomic
from seml.errors import UsageError

__all__ = [
    "COLUMNS",
    "PHASE_ORDER",
    "Row",
    "ScenarioKey",
    "ScenarioStats",
    "Target",
    "phase_means",
    "ratios",
    "read_csv",
    "scenario_stats",
    "targets",
    "total_row",
    "write_csv",
]

TOTAL = "total"
MODES = ("native", "confidential")
TASKS = ("classification", "regression")
RATIO_TARGET = 1.5
SECONDS_TARGET = 15.0


@dataclass(frozen=True)
class Row:
    """One phase of one run (or its `total`)."""

    mode: str
    task: str
    dataset: str
    rows: int
    repetition: int
    phase: str
    seconds: float
    cpu_seconds: float
    cpu_percent: float
    peak_rss_mb: float


COLUMNS = tuple(f.name for f in fields(Row))
ScenarioKey = tuple[str, str, str]  # (mode, task, dataset)


def total_row(phases: Sequence[Row]) -> Row:
    """The `total` of one run: seconds and CPU seconds summed, CPU % weighted by time (the
    CPU seconds over the wall seconds), peak memory the largest of any phase."""
    if not phases:
        raise UsageError("a run without phases has no total")
    first = phases[0]
    seconds = sum(r.seconds for r in phases)
    cpu = sum(r.cpu_seconds for r in phases)
    return Row(
        mode=first.mode,
        task=first.task,
        dataset=first.dataset,
        rows=first.rows,
        repetition=first.repetition,
        phase=TOTAL,
        seconds=seconds,
        cpu_seconds=cpu,
        cpu_percent=100.0 * cpu / seconds if seconds > 0 else 0.0,
        peak_rss_mb=max(r.peak_rss_mb for r in phases),
    )


PHASE_ORDER = ("upload", "fetch", "train", "publish", "pull", "run", TOTAL)


def _phase_rank(phase: str) -> tuple[int, str]:
    for i, prefix in enumerate(PHASE_ORDER):
        if phase == prefix or phase.startswith(prefix + "-"):
            return i, phase
    return len(PHASE_ORDER), phase


def _key(row: Row) -> ScenarioKey:
    return (row.mode, row.task, row.dataset)


@dataclass(frozen=True)
class ScenarioStats:
    """Means over the repetitions of one scenario."""

    mode: str
    task: str
    dataset: str
    rows: int
    runs: int
    phases: dict[str, float]  # phase -> mean seconds (phases in flow order, no total)
    seconds: float  # mean total
    seconds_median: float
    seconds_min: float
    seconds_max: float
    cpu_percent: float  # mean of the runs' weighted CPU %
    peak_rss_mb: float  # mean of the runs' peaks


def phase_means(rows: Iterable[Row]) -> dict[ScenarioKey, dict[str, float]]:
    """Mean seconds per phase (not the total) for each scenario, phases in flow order."""
    acc: dict[ScenarioKey, dict[str, list[float]]] = {}
    for r in rows:
        if r.phase != TOTAL:
            acc.setdefault(_key(r), {}).setdefault(r.phase, []).append(r.seconds)
    return {k: {p: mean(v[p]) for p in sorted(v, key=_phase_rank)} for k, v in acc.items()}


def scenario_stats(rows: Sequence[Row]) -> list[ScenarioStats]:
    """One entry per scenario that has totals."""
    phases = phase_means(rows)
    totals: dict[ScenarioKey, list[Row]] = {}
    for r in rows:
        if r.phase == TOTAL:
            totals.setdefault(_key(r), []).append(r)
    # Flow order of the paper's tables whatever failed: datasets as first seen, then task and
    # mode in their usual order (a scenario whose first run failed keeps its place).
    datasets = list(dict.fromkeys(r.dataset for r in rows))

    def place(k: ScenarioKey) -> tuple[int, int, int, str, str]:
        mode, task, dataset = k
        return (
            datasets.index(dataset),
            TASKS.index(task) if task in TASKS else len(TASKS),
            MODES.index(mode) if mode in MODES else len(MODES),
            task,
            mode,
        )

    out = []
    for k, runs in sorted(totals.items(), key=lambda item: place(item[0])):
        secs = [r.seconds for r in runs]
        out.append(
            ScenarioStats(
                mode=k[0],
                task=k[1],
                dataset=k[2],
                rows=runs[0].rows,
                runs=len(runs),
                phases=phases.get(k, {}),
                seconds=mean(secs),
                seconds_median=median(secs),
                seconds_min=min(secs),
                seconds_max=max(secs),
                cpu_percent=mean(r.cpu_percent for r in runs),
                peak_rss_mb=mean(r.peak_rss_mb for r in runs),
            )
        )
    return out


def ratios(stats: Sequence[ScenarioStats]) -> dict[tuple[str, str], float]:
    """Confidential over native mean whole-flow time, per (task, dataset) that has both."""
    by = {(s.mode, s.task, s.dataset): s.seconds for s in stats}
    out: dict[tuple[str, str], float] = {}
    for mode, task, dataset in by:
        if mode != "confidential":
            continue
        native = by.get(("native", task, dataset))
        if native:
            out[(task, dataset)] = by[(mode, task, dataset)] / native
    return out


@dataclass(frozen=True)
class Target:
    name: str
    value: float | None  # None: the scenarios it needs were not run
    limit: float
    unit: str
    paper: str

    @property
    def status(self) -> str:
        if self.value is None:
            return "NOT RUN"
        return "PASS" if self.value <= self.limit else "MISS"


def targets(stats: Sequence[ScenarioStats], dataset: str = "G") -> list[Target]:
    """The issue's two targets, on dataset G, over both tasks together:

    - whole flow confidential over native: sum of the mean totals of the confidential
      scenarios over the same for native (one number for the flow, whatever the task);
    - confidential whole flow: the slower task's mean total (every task must be under).
    """
    conf = {s.task: s.seconds for s in stats if s.mode == "confidential" and s.dataset == dataset}
    native = {s.task: s.seconds for s in stats if s.mode == "native" and s.dataset == dataset}
    both = sorted(set(conf) & set(native))
    ratio = sum(conf[t] for t in both) / sum(native[t] for t in both) if both else None
    return [
        Target(
            f"whole flow, confidential / native, {dataset}",
            ratio,
            RATIO_TARGET,
            "x",
            "paper: 237 s / 41 s = 5.8",
        ),
        Target(
            f"confidential whole flow, {dataset} (slower task)",
            max(conf.values()) if conf else None,
            SECONDS_TARGET,
            "s",
            "paper: 237 s",
        ),
    ]


# -- CSV -------------------------------------------------------------------------------------


def write_csv(path: Path, rows: Iterable[Row]) -> None:
    """Write all rows to `path` atomically (`seml._fs`)."""
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=COLUMNS)
    writer.writeheader()
    for r in rows:
        d = asdict(r)
        for name in ("seconds", "cpu_seconds", "cpu_percent", "peak_rss_mb"):
            d[name] = f"{d[name]:.4f}"
        writer.writerow(d)
    write_atomic(path, text.getvalue())


def read_csv(path: Path) -> list[Row]:
    try:
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            missing = set(COLUMNS) - set(reader.fieldnames or ())
            if missing:
                raise UsageError(f"{path}: missing columns {', '.join(sorted(missing))}")
            return [
                Row(
                    mode=d["mode"],
                    task=d["task"],
                    dataset=d["dataset"],
                    rows=int(d["rows"]),
                    repetition=int(d["repetition"]),
                    phase=d["phase"],
                    seconds=float(d["seconds"]),
                    cpu_seconds=float(d["cpu_seconds"]),
                    cpu_percent=float(d["cpu_percent"]),
                    peak_rss_mb=float(d["peak_rss_mb"]),
                )
                for d in reader
            ]
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise UsageError(f"{path}: not a bench results file: {e}") from e
