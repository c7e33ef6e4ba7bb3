"""The figures of `seml bench` (matplotlib, Agg backend: no display needed).

One panel per dataset, each with its own y axis from zero: a 1.5 M-row run takes minutes where
one of 150 rows takes seconds, and on a shared axis the small ones would be invisible.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seml._fs import staged
from seml.bench._report import group_phases
from seml.bench._results import (
    GROUPS,
    MODES,
    TASKS,
    PhaseRun,
    Row,
    phase_runs,
    scenario_stats,
)

__all__ = ["BOX_FROM", "phases_figure", "plot_phases", "plot_resources", "resources_figure"]

# With fewer runs than this a box would collapse to a line: show the runs as points instead.
BOX_FROM = 5

_SHORT = {"confidential": "conf.", "classification": "class.", "regression": "regr."}
_MODE_COLOR = {"native": "tab:blue", "confidential": "tab:orange"}
_TASK_MARKER = {"classification": "o", "regression": "^"}


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    try:
        with staged(path) as (tmp,):
            fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    finally:
        _pyplot().close(fig)


def _footnote(fig: Any, text: str) -> None:
    """Below the panels, wrapped to the figure's width (8-point text: ~14 characters an inch)."""
    width = int(fig.get_figwidth() * 14)
    fig.text(0.01, 0.0, "\n".join(textwrap.wrap(text, width)), fontsize=8, va="top")


def _datasets(rows: Sequence[Row]) -> list[tuple[str, int]]:
    """(label, rows) of each dataset, in the order the runs first show it."""
    return list(dict.fromkeys((r.dataset, r.rows) for r in rows))


def _title(label: str, rows: int) -> str:
    return f"{label}: {rows:,} rows"


def plot_phases(rows: Sequence[Row], path: Path) -> None:
    """`phases_figure` written to `path` (PNG)."""
    _save(phases_figure(rows), path)


def phases_figure(rows: Sequence[Row]) -> Any:
    """Stacked bars of the mean phase times of each scenario (the paper's figure 5), with a
    whisker over each bar from the fastest to the slowest run's total."""
    plt = _pyplot()
    stats = scenario_stats(rows)
    datasets = _datasets(rows)
    fig, axes = plt.subplots(
        1, len(datasets), figsize=(1.0 + 3.2 * len(datasets), 4.8), squeeze=False
    )
    colors = plt.get_cmap("tab10")
    for ax, (dataset, size) in zip(axes[0], datasets, strict=True):
        mine = [s for s in stats if s.dataset == dataset]
        x = list(range(len(mine)))
        bottoms = [0.0] * len(mine)
        for i, group in enumerate(GROUPS):
            heights = [group_phases(s.phases)[group] for s in mine]
            ax.bar(x, heights, bottom=bottoms, width=0.7, label=group, color=colors(i))
            bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
        spread = [(xi, s) for xi, s in zip(x, mine, strict=True) if s.runs > 1]
        if spread:
            ax.errorbar(
                [xi for xi, _ in spread],
                [s.seconds for _, s in spread],
                yerr=[
                    [s.seconds - s.seconds_min for _, s in spread],
                    [s.seconds_max - s.seconds for _, s in spread],
                ],
                fmt="none",
                ecolor="black",
                capsize=4,
                lw=1,
            )
        top = max((s.seconds_max for s in mine), default=1.0) or 1.0
        for xi, s in zip(x, mine, strict=True):
            ax.annotate(
                f"{s.seconds:.1f} s\nn={s.runs}",
                (xi, s.seconds_max),
                xytext=(0, 4),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax.set_ylim(0, top * 1.25)  # room for the labels above the whiskers
        ax.set_xticks(
            x, [f"{_SHORT.get(s.mode, s.mode)}\n{_SHORT.get(s.task, s.task)}" for s in mine]
        )
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(_title(dataset, size), fontsize=10)
    axes[0][0].set_ylabel("seconds (mean of the runs)")
    _footnote(
        fig,
        "Bars: mean time of each phase; whisker: the fastest to the slowest run's total "
        "(from 2 runs on); n: runs.",
    )
    handles, labels = axes[0][0].get_legend_handles_labels()
    # Outside the panels, right of them: it never covers a bar or a label.
    fig.legend(
        handles[::-1],
        labels[::-1],
        title="phase",
        loc="center left",
        bbox_to_anchor=(1.0, 0.5),
        fontsize=8,
    )
    fig.suptitle("Whole flow by phase (attestation simulated)")
    fig.tight_layout()
    return fig


def _runs(runs: Sequence[PhaseRun]) -> str:
    """How many runs each scenario of a panel has: "20 runs each", "1-2 runs each"."""
    per: dict[tuple[str, str], set[int]] = {}
    for p in runs:
        per.setdefault((p.mode, p.task), set()).add(p.repetition)
    counts = sorted(len(v) for v in per.values()) or [0]
    low, high = counts[0], counts[-1]
    many = f"{low}" if low == high else f"{low}-{high}"
    return f"{many} run{'' if high == 1 else 's'} each"


def _slots() -> list[tuple[str, str]]:
    return [(mode, task) for mode in MODES for task in TASKS]


def _strip(ax: Any, runs: Sequence[PhaseRun], metric: str) -> None:
    """Each phase's runs at its group's position, one slot per (mode, task): points when few
    runs, boxes (with the points over them) from `BOX_FROM` runs on."""
    slots = _slots()
    width = 0.8 / len(slots)
    for gi, group in enumerate(GROUPS):
        for si, (mode, task) in enumerate(slots):
            values = [
                getattr(p, metric) for p in runs if (p.group, p.mode, p.task) == (group, mode, task)
            ]
            if not values:
                continue
            center = gi - 0.4 + width * (si + 0.5)
            color = _MODE_COLOR[mode]
            if len(values) >= BOX_FROM:
                ax.boxplot(
                    values,
                    positions=[center],
                    widths=width * 0.8,
                    manage_ticks=False,
                    patch_artist=True,
                    boxprops={"facecolor": color, "edgecolor": color, "alpha": 0.35},
                    medianprops={"color": color, "lw": 1.5},
                    whiskerprops={"color": color},
                    capprops={"color": color},
                    flierprops={
                        "marker": _TASK_MARKER.get(task, "o"),
                        "markersize": 3,
                        "markerfacecolor": color,
                        "markeredgecolor": "none",
                    },
                )
                continue
            # Few runs: each one a point, spread across the slot so equal values stay visible.
            n = len(values)
            xs = [center + width * 0.6 * ((i + 0.5) / n - 0.5) for i in range(n)]
            ax.scatter(
                xs,
                values,
                s=24,
                marker=_TASK_MARKER.get(task, "o"),
                color=color,
                linewidths=0,
                zorder=3,
            )
    ax.set_xticks(range(len(GROUPS)), list(GROUPS))
    ax.set_xlim(-0.5, len(GROUPS) - 0.5)
    for gi in range(1, len(GROUPS)):
        ax.axvline(gi - 0.5, color="0.9", lw=0.8, zorder=0)
    ax.set_ylim(bottom=0)
    top = ax.get_ylim()[1]
    ax.set_ylim(0, top * 1.05)
    ax.tick_params(axis="x", labelsize=8)
    ax.tick_params(axis="y", labelsize=8)


def plot_resources(rows: Sequence[Row], path: Path) -> None:
    """`resources_figure` written to `path` (PNG)."""
    _save(resources_figure(rows), path)


def resources_figure(rows: Sequence[Row]) -> Any:
    """CPU % and peak memory of every phase of every run, per dataset (the paper's figure 4):
    a point per run (boxes from `BOX_FROM` runs), colour for the mode, shape for the task."""
    plt = _pyplot()
    from matplotlib.lines import Line2D

    runs = phase_runs(rows)
    datasets = _datasets(rows)
    fig, axes = plt.subplots(
        2, len(datasets), figsize=(1.0 + 4.6 * len(datasets), 7.0), squeeze=False
    )
    for col, (dataset, size) in enumerate(datasets):
        mine = [p for p in runs if p.dataset == dataset]
        _strip(axes[0][col], mine, "cpu_percent")
        _strip(axes[1][col], mine, "peak_rss_mb")
        axes[0][col].set_title(f"{_title(dataset, size)}; {_runs(mine)}", fontsize=10)
    axes[0][0].set_ylabel("CPU % (100 = one core busy)")
    axes[1][0].set_ylabel("peak RSS (MB)")
    legend = [
        Line2D([], [], color=_MODE_COLOR[m], marker=_TASK_MARKER[t], ls="none", label=f"{m} {t}")
        for m, t in _slots()
    ]
    fig.legend(handles=legend, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle("Resources of each phase of every run (attestation simulated)")
    _footnote(
        fig,
        f"A point per run; a box (median, quartiles, 1.5 IQR whiskers) from {BOX_FROM} runs on. "
        "upload, pull and run: CPU % of both parties' processes together, peak of the larger.",
    )
    fig.tight_layout()
    return fig
