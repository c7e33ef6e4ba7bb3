"""`report.md`: the tables of `seml bench`, the targets and the paper's figures beside ours."""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from seml.bench._results import Row, ScenarioStats, ratios, scenario_stats, targets

__all__ = ["Machine", "group_phases", "machine", "render_report"]

# The paper's section 7 (table 2, figure 5): averages over its scenarios.
PAPER = {
    "native": 41.0,
    "confidential": 237.0,
    "confidential upload": 107.0,
    "train": 14.0,
}
GROUPS = ("upload", "fetch", "train", "publish", "pull", "run")


@dataclass(frozen=True)
class Machine:
    cores: int
    cpu: str
    system: str
    python: str


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


def group_phases(phases: Mapping[str, float]) -> dict[str, float]:
    """Per-party phases (upload-alice, upload-bob, ...) summed into the paper's groups."""
    out = dict.fromkeys(GROUPS, 0.0)
    for phase, seconds in phases.items():
        group = phase.split("-", 1)[0]
        if group in out:
            out[group] += seconds
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    # Three decimals for ratios: 1.504x must not print as a passing-looking 1.50x.
    return f"{value:.3f}{unit}" if unit == "x" else f"{value:.2f} {unit}"


def _scenario_table(stats: Sequence[ScenarioStats]) -> list[str]:
    head = ["mode", "task", "dataset", "rows", "runs", "mean total s", "median (min-max)", *GROUPS]
    head += ["CPU %", "peak MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in stats:
        g = group_phases(s.phases)
        cells = [
            s.mode,
            s.task,
            s.dataset,
            f"{s.rows:,}",
            str(s.runs),
            f"**{s.seconds:.2f}**",
            f"{s.seconds_median:.2f} ({s.seconds_min:.2f}-{s.seconds_max:.2f})",
            *(f"{g[name]:.2f}" for name in GROUPS),
            f"{s.cpu_percent:.0f}",
            f"{s.peak_rss_mb:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _paper_table(stats: Sequence[ScenarioStats], dataset: str) -> list[str]:
    def mean_of(mode: str, pick: str) -> float | None:
        chosen = [s for s in stats if s.mode == mode and s.dataset == dataset]
        if not chosen:
            return None
        values = [s.seconds if pick == "total" else group_phases(s.phases)[pick] for s in chosen]
        return sum(values) / len(values)

    rows = [
        ("native whole flow (mean over tasks)", PAPER["native"], mean_of("native", "total")),
        (
            "confidential whole flow (mean over tasks)",
            PAPER["confidential"],
            mean_of("confidential", "total"),
        ),
        (
            "confidential upload (both parties)",
            PAPER["confidential upload"],
            mean_of("confidential", "upload"),
        ),
        ("native training", PAPER["train"], mean_of("native", "train")),
        ("confidential training", PAPER["train"], mean_of("confidential", "train")),
    ]
    lines = [
        f"| figure | paper (s) | this run, {dataset} (s) |",
        "|---|---|---|",
    ]
    for name, paper, ours in rows:
        lines.append(f"| {name} | {paper:.0f} | {'-' if ours is None else f'{ours:.2f}'} |")
    return lines


def render_report(
    rows: Sequence[Row],
    *,
    started: str,
    repetitions: int,
    storage: str,
    host: Machine,
    failures: Sequence[str] = (),
) -> str:
    """The whole report.md text for `rows` (phases and totals of every run)."""
    stats = scenario_stats(rows)
    lines = [
        "# SEML bench",
        "",
        f"- started: {started}",
        f"- machine: {host.cores} cores, {host.cpu}; {host.system}; Python {host.python}",
        f"- storage: `{storage}`",
        f"- repetitions per scenario: {repetitions}",
        "- **attestation is SIMULATED**: no TEE hardware; `seml run` makes and verifies software",
        "  evidence, so the confidential figures include the protocol, encryption and volumes",
        "  but none of the cost of running inside an enclave (the paper's SGX overhead).",
        "- each phase is one `seml` process tree (`seml run ...` in confidential mode, the plain",
        "  `seml flow ...` program in native mode), timed by wall clock, CPU and peak RSS from the",
        "  OS; keys, sessions, signatures and submission are set-up, not measured.",
        "",
        "## Targets",
        "",
        "| target | value | limit | status | paper |",
        "|---|---|---|---|---|",
    ]
    for t in targets(stats):
        limit = f"<= {t.limit:g}{t.unit}" if t.unit == "x" else f"<= {t.limit:g} {t.unit}"
        lines.append(
            f"| {t.name} | {_fmt(t.value, t.unit)} | {limit} | **{t.status}** | {t.paper} |"
        )
    lines += ["", "## Means per scenario (seconds)", ""]
    lines += _scenario_table(stats)
    lines += [
        "",
        "Targets and ratios use the means; a median far below its mean means a few runs were",
        "slowed by other load on the machine.",
        "upload, pull and run add up both parties' phases. CPU % is CPU seconds over wall",
        "seconds of the whole run (100 % = one core busy); peak MB is the largest process-tree RSS",
        "of any phase.",
        "",
        "## Confidential / native, whole flow",
        "",
        "| task | dataset | confidential / native |",
        "|---|---|---|",
    ]
    for (task, dataset), ratio in ratios(stats).items():
        lines.append(f"| {task} | {dataset} | {ratio:.2f}x |")
    lines += ["", "## The paper's figures beside ours", ""]
    lines += _paper_table(stats, "G")
    lines += [
        "",
        "The paper's numbers are averages over its scenarios on SGX hardware (SCONE); ours are",
        "dataset G (Iris x 100 = 15,000 rows) on this machine, attestation simulated.",
        "",
        "Figures: `phases.png` (mean phase times, as the paper's figure 5), `resources.png`",
        "(CPU % and peak memory per run, as figure 4); raw rows: `results.csv`.",
    ]
    if failures:
        lines += ["", "## Failed runs", ""]
        for failure in failures:
            first, _, rest = failure.partition("\n")
            lines.append(f"- {first}")
            if rest:
                lines += ["", "  ```", *(f"  {line}" for line in rest.splitlines()), "  ```"]
    return "\n".join(lines) + "\n"
