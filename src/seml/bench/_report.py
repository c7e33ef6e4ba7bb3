"""`report.md`: the tables of `seml bench`, the project's targets, and the paper's figures.

The tables are built once as `Table`s (cells are plain text) and rendered twice: as Markdown
here, and by the CLI for a terminal or a log.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import mean

from seml.bench._results import (
    GROUPS,
    MODES,
    PhaseStats,
    Row,
    ScenarioStats,
    group_of,
    phase_stats,
    ratios,
    scenario_stats,
    targets,
)
from seml.bench._scenarios import LARGE_ROWS

__all__ = [
    "PAPER",
    "BenchInfo",
    "Machine",
    "Table",
    "group_phases",
    "machine",
    "phase_notes",
    "phase_table",
    "render_report",
    "scenario_table",
    "summary_table",
    "target_table",
]

# The paper's section 7 (Luz & Brito, UFCG 2023; table 2, figure 5): averages over its
# scenarios (datasets P and G) on SGX hardware under SCONE. Figures to compare with, not targets.
PAPER = {
    "native": 41.0,
    "confidential": 237.0,
    "confidential upload": 107.0,
    "train": 14.0,
}

# What each phase runs, confidential then native (both on the same storage).
PHASE_WORK = {
    "upload": (
        "each party's `seml run` of its uploader: attest, receive the party's data key, "
        "encrypt the party's CSV and push it with its manifest",
        "each party copies its CSV to the storage as it is",
    ),
    "fetch": (
        "`seml run` in the cloud: attest, pull both parties' data, verify it against their "
        "manifests and decrypt it into the protected training volume",
        "plain copies of both parties' CSVs to a local folder",
    ),
    "train": (
        "`seml run` in the cloud: open the training volume, read both CSVs, fit the random "
        "forest, write the model into the volume",
        "the same training program on the plain folder",
    ),
    "publish": (
        "`seml run` in the cloud: encrypt the model with the model key and push it",
        "a plain copy of the model to the storage",
    ),
    "pull": (
        "each party's `seml run`: attest, pull and verify the model into its protected volume",
        "each party copies the model to a local folder",
    ),
    "run": (
        "each party's `seml run` of the model runner: open the volume, load the model, "
        "predict the party's held-out rows",
        "the same model runner on the plain folder",
    ),
}


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    system: str
    python: str

    def describe(self) -> str:
        return f"{self.cores} cores, {self.cpu}; {self.system}; Python {self.python}"


def machine() -> Machine:
    """What this machine is (read from the OS)."""
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return Machine(
        cores=os.cpu_count() or 0,
        cpu=cpu,
        system=f"{platform.system()} {platform.release()}",
        python=platform.python_version(),
    )


@dataclass(frozen=True)
class BenchInfo:
    """What a results folder's rows do not say: when, where, how many runs, what failed."""

    started: str
    repetitions: int  # per scenario on the small datasets
    large_repetitions: int  # per scenario on the large ones
    storage: str  # what the report says about the storage (never a folder that is gone)
    host: Machine | None  # None: not recorded
    finished: str | None = None  # None: still running, or interrupted
    failures: tuple[str, ...] = ()
    load: tuple[float, ...] = ()  # the 1-minute load average after each run


@dataclass(frozen=True)
class Table:
    """A table of plain-text cells; `right` are the columns of figures, `strong` the columns
    a renderer should emphasise."""

    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]] = ()
    right: frozenset[int] = frozenset()
    strong: frozenset[int] = frozenset()


def markdown(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    rule = ["---:" if i in table.right else "---" for i in range(len(table.headers))]
    out = [line(table.headers), "|" + "|".join(rule) + "|"]
    for row in table.rows:
        out.append(line([f"**{c}**" if i in table.strong else c for i, c in enumerate(row)]))
    return out


def group_phases(phases: Mapping[str, float]) -> dict[str, float]:
    """Per-party phases (upload-alice, upload-bob, ...) summed into the paper's groups."""
    out = dict.fromkeys(GROUPS, 0.0)
    for phase, seconds in phases.items():
        if group_of(phase) in out:
            out[group_of(phase)] += seconds
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    # Three decimals for ratios: 1.204x must not print as a passing-looking 1.20x.
    return f"{value:.3f}{unit}" if unit == "x" else f"{value:.2f} {unit}"


def _delta(value: float) -> str:
    return "+0.00" if abs(value) < 0.005 else f"{value:+.2f}"


def _secs(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def target_table(stats: Sequence[ScenarioStats]) -> Table:
    rows = []
    for t in targets(stats):
        limit = f"<= {t.limit:g}{t.unit}" if t.unit == "x" else f"<= {t.limit:g} {t.unit}"
        rows.append((t.name, _fmt(t.value, t.unit), limit, t.status, t.paper))
    return Table(
        ("target", "this run", "limit", "status", "paper's figure"),
        rows,
        right=frozenset({1}),
        strong=frozenset({3}),
    )


def scenario_table(stats: Sequence[ScenarioStats]) -> Table:
    head = ("mode", "task", "dataset", "rows", "runs", "mean total s", "median (min-max)")
    rows = []
    for s in stats:
        g = group_phases(s.phases)
        rows.append(
            (
                s.mode,
                s.task,
                s.dataset,
                f"{s.rows:,}",
                str(s.runs),
                _secs(s.seconds),
                f"{_secs(s.seconds_median)} ({_secs(s.seconds_min)}-{_secs(s.seconds_max)})",
                *(_secs(g[name]) for name in GROUPS),
                f"{s.cpu_percent:.0f}",
                f"{s.peak_rss_mb:.0f}",
            )
        )
    return Table(
        (*head, *GROUPS, "CPU %", "peak MB"),
        rows,
        right=frozenset(range(3, len(head) + len(GROUPS) + 2)),
        strong=frozenset({5}),
    )


def summary_table(stats: Sequence[ScenarioStats]) -> Table:
    """`scenario_table` in 80 columns: the totals and the peak (for a terminal)."""
    rows = [
        (
            s.mode,
            s.task,
            s.dataset,
            str(s.runs),
            _secs(s.seconds),
            f"{_secs(s.seconds_min)}-{_secs(s.seconds_max)}",
            f"{s.peak_rss_mb:.0f}",
        )
        for s in stats
    ]
    return Table(
        ("mode", "task", "dataset", "runs", "mean s", "min-max s", "peak MB"),
        rows,
        right=frozenset({3, 4, 5, 6}),
        strong=frozenset({4}),
    )


def ratio_table(stats: Sequence[ScenarioStats]) -> Table:
    """Wall-clock means and their ratio (what the targets use), and the same in CPU seconds
    (which other load on the machine inflates less)."""
    by = {(s.mode, s.task, s.dataset): s for s in stats}
    rows = []
    for (task, dataset), ratio in ratios(stats).items():
        native, conf = by[("native", task, dataset)], by[("confidential", task, dataset)]
        cpu = conf.cpu_seconds / native.cpu_seconds if native.cpu_seconds > 0 else None
        rows.append(
            (
                task,
                dataset,
                _secs(native.seconds),
                _secs(conf.seconds),
                _fmt(ratio, "x"),
                _secs(native.cpu_seconds),
                _secs(conf.cpu_seconds),
                _fmt(cpu, "x"),
            )
        )
    return Table(
        (
            *("task", "dataset", "native s", "conf. s", "ratio"),
            *("native CPU s", "conf. CPU s", "CPU ratio"),
        ),
        rows,
        right=frozenset(range(2, 8)),
    )


def phase_table(phases: Sequence[PhaseStats]) -> Table:
    rows = [
        (
            p.mode,
            p.task,
            p.dataset,
            p.group,
            str(p.runs),
            _secs(p.seconds),
            f"{_secs(p.seconds_min)}-{_secs(p.seconds_max)}",
            _secs(p.cpu_seconds),
            f"{p.cpu_percent:.0f}",
            f"{p.peak_rss_mb:.0f}",
        )
        for p in phases
    ]
    return Table(
        (
            *("mode", "task", "dataset", "phase", "runs", "mean s", "min-max s"),
            *("CPU s", "CPU %", "peak MB"),
        ),
        rows,
        right=frozenset(range(4, 10)),
    )


def _paper_table(stats: Sequence[ScenarioStats]) -> Table:
    datasets = [d for d in ("P", "G") if any(s.dataset == d for s in stats)]

    def mean_of(mode: str, pick: str, dataset: str) -> str:
        chosen = [s for s in stats if s.mode == mode and s.dataset == dataset]
        if not chosen:
            return "-"
        values = [s.seconds if pick == "total" else group_phases(s.phases)[pick] for s in chosen]
        return _secs(mean(values))

    figures = [
        ("native whole flow (mean over tasks)", PAPER["native"], "native", "total"),
        (
            "confidential whole flow (mean over tasks)",
            PAPER["confidential"],
            "confidential",
            "total",
        ),
        (
            "confidential upload (both parties)",
            PAPER["confidential upload"],
            "confidential",
            "upload",
        ),
        ("native training", PAPER["train"], "native", "train"),
        ("confidential training", PAPER["train"], "confidential", "train"),
    ]
    return Table(
        ("figure", "paper (s)", *(f"this run, {d} (s)" for d in datasets)),
        [
            (name, f"{paper:.0f}", *(mean_of(mode, pick, d) for d in datasets))
            for name, paper, mode, pick in figures
        ],
        right=frozenset(range(1, 2 + len(datasets))),
    )


# -- what dominates each phase -----------------------------------------------------------------


def _pooled(phases: Sequence[PhaseStats], mode: str, group: str) -> dict[str, PhaseStats]:
    """Per dataset, the phase over both tasks (mean of the tasks' means, CPU % and peak of
    the tasks' own)."""
    out: dict[str, PhaseStats] = {}
    for dataset in dict.fromkeys(p.dataset for p in phases):
        mine = [p for p in phases if (p.mode, p.group, p.dataset) == (mode, group, dataset)]
        if mine:
            out[dataset] = PhaseStats(
                mode=mode,
                task="both",
                dataset=dataset,
                group=group,
                runs=sum(p.runs for p in mine),
                seconds=mean(p.seconds for p in mine),
                seconds_min=min(p.seconds_min for p in mine),
                seconds_max=max(p.seconds_max for p in mine),
                cpu_seconds=mean(p.cpu_seconds for p in mine),
                cpu_percent=mean(p.cpu_percent for p in mine),
                peak_rss_mb=max(p.peak_rss_mb for p in mine),
            )
    return out


def _cpu_words(percent: float) -> str:
    if percent >= 130:
        return "both cores busy"
    if percent >= 80:
        return "CPU-bound"
    return "partly waiting: on I/O, or for the CPU under other load"


def _cost(delta: float) -> str:
    if delta < 0.005:  # other load moved the figures more than the difference
        return f"{_delta(delta)} CPU s (nothing measurable)"
    return f"{_delta(delta)} CPU s"


def _phase_note(
    by_mode: Mapping[str, Mapping[str, PhaseStats]], rows_of: Mapping[str, int]
) -> list[str]:
    """The measured lines of one phase, in CPU seconds (which other load on the machine
    inflates much less than wall time): its fixed cost (on the smallest dataset), what the
    data adds (up to the largest), which of the two dominates, and what confidential adds."""
    conf, native = by_mode.get("confidential", {}), by_mode.get("native", {})
    main = conf or native  # the figures the verdict is about: confidential when it ran
    order = sorted(main, key=lambda d: rows_of[d])
    small, large = order[0], order[-1]
    out = []
    fixed = [
        f"{mode} {_secs(m[small].cpu_seconds)} CPU s" for mode, m in by_mode.items() if small in m
    ]
    line = f"fixed cost (at {small}): {', '.join(fixed)}"
    if small in conf and small in native:
        line += (
            f"; `seml run` (attestation, key release, volumes, its own start) adds "
            f"{_cost(conf[small].cpu_seconds - native[small].cpu_seconds)}"
        )
    out.append(line)
    last = main[large]
    where = (
        f"at {large}: {last.cpu_percent:.0f} % CPU ({_cpu_words(last.cpu_percent)}), "
        f"peak {last.peak_rss_mb:.0f} MB"
    )
    if small == large:
        out.append(f"{where}; one dataset only: fixed cost and data cannot be told apart")
        return out
    grown = {
        mode: m[large].cpu_seconds - m[small].cpu_seconds
        for mode, m in by_mode.items()
        if small in m and large in m
    }
    out.append(
        f"what the data adds ({small} to {large}): "
        + "; ".join(f"{mode} {_cost(g)}" for mode, g in grown.items())
    )
    data = max(0.0, last.cpu_seconds - main[small].cpu_seconds)
    share = data / last.cpu_seconds if last.cpu_seconds > 0 else 0.0
    mode = "confidential" if conf else "native"
    if share >= 0.5:
        million = (rows_of[large] - rows_of[small]) / 1e6
        verdict = (
            f"the data dominates: {share:.0%} of the {mode} CPU time at {large} "
            f"({data / million:.1f} CPU s per million rows)"
        )
    else:
        verdict = f"the fixed cost dominates: {1 - share:.0%} of the {mode} CPU time at {large}"
    out.append(f"{verdict}; {where}")
    return out


def phase_notes(rows: Sequence[Row]) -> list[str]:
    """A Markdown bullet per phase: what it runs in each mode, then what its time is made of
    in this run (fixed cost or data, CPU-bound or waiting, and what confidential adds)."""
    phases = phase_stats(rows)
    rows_of = {r.dataset: r.rows for r in rows}
    out: list[str] = []
    for group in GROUPS:
        by_mode = {m: p for m in MODES if (p := _pooled(phases, m, group))}
        if not by_mode:
            continue
        conf_work, native_work = PHASE_WORK[group]
        out.append(f"- **{group}**: confidential: {conf_work}; native: {native_work}.")
        out += [f"  - {line}." for line in _phase_note(by_mode, rows_of)]
    return out


def _load(info: BenchInfo) -> list[str]:
    if not info.load:
        return ["- load: not recorded"]
    line = (
        f"- load (1-minute load average after each run): mean {mean(info.load):.1f}, "
        f"max {max(info.load):.1f}"
    )
    cores = info.host.cores if info.host else 0
    if cores and mean(info.load) > cores:
        return [
            f"{line}: **the machine was busy** (more runnable processes than its {cores} "
            "cores): other work competed for the CPU, so wall-clock times are inflated; CPU "
            "seconds much less so."
        ]
    return [line]


def _repetitions(info: BenchInfo, stats: Sequence[ScenarioStats]) -> str:
    sizes = {s.dataset: s.rows for s in stats}
    large = [d for d, rows in sizes.items() if rows >= LARGE_ROWS]
    small = [d for d in sizes if d not in large]
    parts = []
    if small or not large:
        parts.append(f"{info.repetitions} per scenario on {', '.join(small) or 'each dataset'}")
    if large:
        parts.append(f"{info.large_repetitions} on the large {', '.join(large)}")
    planned = "; ".join(parts)
    if any(
        s.runs < (info.large_repetitions if s.dataset in large else info.repetitions) for s in stats
    ):
        return f"{planned} planned; the tables' runs column counts those that finished"
    return planned


def render_report(rows: Sequence[Row], info: BenchInfo) -> str:
    """The whole report.md text for `rows` (phases and totals of every run)."""
    stats = scenario_stats(rows)
    sizes = dict.fromkeys(f"{s.dataset} = {s.rows:,} rows" for s in stats)
    lines = [
        "# SEML bench",
        "",
        f"- started: {info.started}; finished: {info.finished or 'not finished (interrupted?)'}",
        f"- machine: {info.host.describe() if info.host else 'not recorded'}",
        *_load(info),
        f"- storage: {info.storage}",
        f"- datasets (Iris repeated): {'; '.join(sizes) or 'none'}",
        f"- repetitions: {_repetitions(info, stats)}",
        "- **attestation is SIMULATED**: no TEE hardware; `seml run` makes and verifies software",
        "  evidence, so the confidential figures include the protocol, encryption and volumes",
        "  but none of the cost of running inside an enclave (the paper's SGX overhead).",
        "- each phase is one `seml` process tree (`seml run ...` in confidential mode, the plain",
        "  `seml flow ...` program in native mode), timed by wall clock, CPU and peak RSS from the",
        "  OS; keys, sessions, signatures and submission are set-up, not measured.",
        "",
        "## Targets",
        "",
        "These targets are this project's own: SEML's goals for this implementation. The paper",
        "sets none; its figure for the same measure is shown beside each for comparison only.",
        "",
        *markdown(target_table(stats)),
        "",
        "## Means per scenario (seconds)",
        "",
        *markdown(scenario_table(stats)),
        "",
        "Targets and ratios use the means; a median far below its mean means a few runs were",
        "slowed by other load on the machine. upload, pull and run add up both parties' phases.",
        "CPU % is CPU seconds over wall seconds of the whole run (100 % = one core busy); peak",
        "MB is the largest process-tree RSS of any phase.",
        "",
        "## Confidential / native, whole flow",
        "",
        "Ratios are confidential over native. Wall-clock seconds are what the targets use; CPU",
        "seconds (of every process of the run) are much less inflated by other load on the",
        "machine.",
        "",
        *markdown(ratio_table(stats)),
        "",
        "## What dominates each phase",
        "",
        "Both tasks together (the mean of the two), in CPU seconds of the phase's processes:",
        "other load on the machine inflates them much less than wall time. A phase's CPU time",
        "on the smallest dataset is taken as its fixed cost (process start, imports, and in",
        "confidential mode what `seml run` itself does); what it gains up to the largest",
        "dataset is what the data costs.",
        "",
        *phase_notes(rows),
        "",
        "## Every phase: time, CPU and peak memory",
        "",
        *markdown(phase_table(phase_stats(rows))),
        "",
        "CPU % is over all runs of the phase; peak MB the largest of any run (both parties'",
        "phases together for upload, pull and run).",
        "",
        "## The paper's figures, for comparison",
        "",
        "From the SEML paper (Luz & Brito, UFCG 2023, section 7): averages over its scenarios",
        "(datasets P and G) on SGX hardware under SCONE. They are the paper's measurements, not",
        "targets; ours are from this run, attestation simulated.",
        "",
        *markdown(_paper_table(stats)),
        "",
        "## Files",
        "",
        "- `results.csv`: one row per run and phase, plus a `total` row per run;",
        "- `bench.json`: when, on what machine, how many repetitions, which runs failed;",
        "- `phases.png`: mean phase times per scenario, with the spread of the totals (the",
        "  paper's figure 5);",
        "- `resources.png`: CPU % and peak memory of every phase of every run (figure 4).",
        "",
        "`seml bench report DIR` rebuilds the figures and this report from those two files.",
    ]
    if info.failures:
        lines += ["", "## Failed runs", ""]
        for failure in info.failures:
            first, _, rest = failure.partition("\n")
            lines.append(f"- {first}")
            if rest:
                lines += ["", "  ```", *(f"  {line}" for line in rest.splitlines()), "  ```"]
    return "\n".join(lines) + "\n"
