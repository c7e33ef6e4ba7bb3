"""The figures of `seml bench` (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from seml._fs import staged
from seml.bench._report import GROUPS, group_phases
from seml.bench._results import Row, ScenarioStats, scenario_stats

__all__ = ["plot_phases", "plot_resources"]


_SHORT = {"confidential": "conf.", "classification": "class.", "regression": "regr."}


def _label(mode: str, task: str, dataset: str) -> str:
    return "\n".join(_SHORT.get(word, word) for word in (mode, task, dataset))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    # Never a half-written image: written under a temporary name, renamed once complete.
    with staged(path) as (tmp,):
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")


def plot_phases(stats: Sequence[ScenarioStats], path: Path) -> None:
    """Stacked bars of the mean phase times of each scenario (paper, figure 5)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(stats) + 2), 4.5))
    labels = [_label(s.mode, s.task, s.dataset) for s in stats]
    bottoms = [0.0] * len(stats)
    colors = plt.get_cmap("tab10")
    for i, group in enumerate(GROUPS):
        heights = [group_phases(s.phases)[group] for s in stats]
        ax.bar(labels, heights, bottom=bottoms, label=group, color=colors(i))
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for x, total in enumerate(bottoms):
        ax.annotate(f"{total:.1f}", (x, total), ha="center", va="bottom", fontsize=8)
    ax.set_ylabel("mean seconds")
    ax.set_title("Whole flow by phase (attestation simulated)")
    ax.legend(fontsize=8, ncols=2)
    _save(fig, path)
    plt.close(fig)


def plot_resources(rows: Sequence[Row], path: Path) -> None:
    """Box plots of each run's CPU % and peak memory per scenario (paper, figure 4)."""
    plt = _pyplot()
    stats = scenario_stats(rows)
    totals = [r for r in rows if r.phase == "total"]
    labels, cpu, mem = [], [], []
    for s in stats:
        mine = [r for r in totals if (r.mode, r.task, r.dataset) == (s.mode, s.task, s.dataset)]
        labels.append(_label(s.mode, s.task, s.dataset))
        cpu.append([r.cpu_percent for r in mine])
        mem.append([r.peak_rss_mb for r in mine])
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(8.0, 1.6 * len(stats) + 2), 4.5))
    for ax, data, title in (
        (left, cpu, "CPU % of the whole run (100 = one core)"),
        (right, mem, "peak RSS of any phase (MB)"),
    ):
        ax.boxplot(data, tick_labels=labels)
        ax.set_title(title, fontsize=10)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("Resources per run (attestation simulated)")
    _save(fig, path)
    plt.close(fig)
