"""Benchmark rows and their aggregation: pure, no I/O except the CSV writer/reader."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from statistics import mean, median

from seml._fs import staged
from seml.errors import UsageError

__all__ = [
    "COLUMNS",
    "GROUPS",
    "PHASE_ORDER",
    "PhaseRun",
    "PhaseStats",
    "Row",
    "ScenarioKey",
    "ScenarioStats",
    "Target",
    "group_of",
    "phase_means",
    "phase_runs",
    "phase_stats",
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
# The project's own targets (none is the paper's: it reports figures, it sets no targets).
RATIO_TARGETS = {"G": 1.2, "L": 1.2}  # whole flow, confidential over native
SECONDS_TARGET = 15.0  # confidential whole flow on G, slower task
# The paper's phases; per-party phases (upload-alice, upload-bob, ...) belong to their group.
GROUPS = ("upload", "fetch", "train", "publish", "pull", "run")


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
    cpu_seconds: float  # mean total CPU seconds (less sensitive to other load than seconds)
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
                cpu_seconds=mean(r.cpu_seconds for r in runs),
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
    """One of the project's own targets, with the paper's figure for the same thing (if any)."""

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


def _ratio(stats: Sequence[ScenarioStats], dataset: str) -> float | None:
    """Sum of the confidential mean totals over the same for native, over the tasks run in
    both modes (one number for the flow, whatever the task)."""
    conf = {s.task: s.seconds for s in stats if s.mode == "confidential" and s.dataset == dataset}
    native = {s.task: s.seconds for s in stats if s.mode == "native" and s.dataset == dataset}
    both = sorted(set(conf) & set(native))
    return sum(conf[t] for t in both) / sum(native[t] for t in both) if both else None


def targets(stats: Sequence[ScenarioStats]) -> list[Target]:
    """The project's targets for the whole flow:

    - confidential over native, on G and on L (see `_ratio`);
    - confidential whole flow on G: the slower task's mean total (every task must be under).
    """
    out = [
        Target(
            f"whole flow, conf. / native, {dataset}",
            _ratio(stats, dataset),
            limit,
            "x",
            "5.8x (237 s / 41 s)" if dataset == "G" else "none (ran P, G only)",
        )
        for dataset, limit in RATIO_TARGETS.items()
    ]
    conf = [s.seconds for s in stats if s.mode == "confidential" and s.dataset == "G"]
    out.append(
        Target(
            "conf. whole flow, G (slower task)",
            max(conf) if conf else None,
            SECONDS_TARGET,
            "s",
            "237 s",
        )
    )
    return out


# -- per phase -------------------------------------------------------------------------------


def group_of(phase: str) -> str:
    """The paper's phase a phase of ours belongs to: upload-alice -> upload."""
    return phase.split("-", 1)[0]


@dataclass(frozen=True)
class PhaseRun:
    """One phase group of one run: its parties' phases together (seconds and CPU seconds
    added up, peak the largest)."""

    mode: str
    task: str
    dataset: str
    repetition: int
    group: str
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def cpu_percent(self) -> float:
        return 100.0 * self.cpu_seconds / self.seconds if self.seconds > 0 else 0.0


def phase_runs(rows: Iterable[Row]) -> list[PhaseRun]:
    """Each run's phases summed into the paper's groups (runs in the order of `rows`)."""
    acc: dict[tuple[str, str, str, int, str], list[Row]] = {}
    for r in rows:
        if r.phase != TOTAL and group_of(r.phase) in GROUPS:
            acc.setdefault((*_key(r), r.repetition, group_of(r.phase)), []).append(r)
    return [
        PhaseRun(
            mode=mode,
            task=task,
            dataset=dataset,
            repetition=rep,
            group=group,
            seconds=sum(r.seconds for r in mine),
            cpu_seconds=sum(r.cpu_seconds for r in mine),
            peak_rss_mb=max(r.peak_rss_mb for r in mine),
        )
        for (mode, task, dataset, rep, group), mine in acc.items()
    ]


@dataclass(frozen=True)
class PhaseStats:
    """One phase group of one scenario over its runs."""

    mode: str
    task: str
    dataset: str
    group: str
    runs: int
    seconds: float  # mean
    seconds_min: float
    seconds_max: float
    cpu_seconds: float  # mean
    cpu_percent: float  # CPU seconds over wall seconds, all runs together
    peak_rss_mb: float  # the largest of any run


def phase_stats(rows: Sequence[Row]) -> list[PhaseStats]:
    """Per scenario (in `scenario_stats` order) and phase group (in flow order)."""
    by: dict[tuple[str, str, str, str], list[PhaseRun]] = {}
    for p in phase_runs(rows):
        by.setdefault((p.mode, p.task, p.dataset, p.group), []).append(p)
    out = []
    for s in scenario_stats(rows):
        for group in GROUPS:
            runs = by.get((s.mode, s.task, s.dataset, group), [])
            if not runs:
                continue
            secs = [p.seconds for p in runs]
            wall = sum(secs)
            out.append(
                PhaseStats(
                    mode=s.mode,
                    task=s.task,
                    dataset=s.dataset,
                    group=group,
                    runs=len(runs),
                    seconds=mean(secs),
                    seconds_min=min(secs),
                    seconds_max=max(secs),
                    cpu_seconds=mean(p.cpu_seconds for p in runs),
                    cpu_percent=100.0 * sum(p.cpu_seconds for p in runs) / wall if wall else 0.0,
                    peak_rss_mb=max(p.peak_rss_mb for p in runs),
                )
            )
    return out


# -- CSV -------------------------------------------------------------------------------------


def write_csv(path: Path, rows: Iterable[Row]) -> None:
    """Write all rows to `path` atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS)
            writer.writeheader()
            for r in rows:
                d = asdict(r)
                for name in ("seconds", "cpu_seconds", "cpu_percent", "peak_rss_mb"):
                    d[name] = f"{d[name]:.4f}"
                writer.writerow(d)

    with staged(path) as (tmp,):
        write(tmp)


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
