"""report.md and the figures, from constructed rows and results folders."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from seml.bench import (
    BOX_FROM,
    FIGURES,
    INFO_FILE,
    REPORT_FILE,
    RESULTS_FILE,
    BenchInfo,
    Machine,
    Row,
    phases_figure,
    read_info,
    rebuild,
    render_report,
    resources_figure,
    total_row,
    write_csv,
    write_info,
)
from seml.bench._report import group_phases
from seml.errors import UsageError

HOST = Machine(cores=2, cpu="Test CPU 9000", system="Linux 6", python="3.11.7")
PHASES = (
    "upload-alice",
    "upload-bob",
    "fetch",
    "train",
    "publish",
    "pull-alice",
    "pull-bob",
    "run-alice",
    "run-bob",
)
RESULT_FILES = sorted([INFO_FILE, *FIGURES, REPORT_FILE, RESULTS_FILE])
SIZES = {"P": 150, "G": 15_000, "L": 1_500_000}


def info(**changes: Any) -> BenchInfo:
    base = BenchInfo(
        started="2025-05-01 10:00:00 UTC",
        repetitions=2,
        large_repetitions=1,
        storage="a local folder (file://) in the results folder's work/ (removed after the run)",
        host=HOST,
        finished="2025-05-01 10:40:00 UTC",
    )
    return BenchInfo(**{**base.__dict__, **changes})


def rows(datasets: Sequence[str] = ("G",), reps: int = 2) -> list[Row]:
    """Phase i of repetition r takes scale * (i + r) s; the data adds 100 s of training per
    million rows; peak memory is 100 MB * r (train: + 1 MB per 1,000 rows)."""
    out: list[Row] = []
    for rep in range(1, reps + 1):
        for dataset in datasets:
            size = SIZES[dataset]
            for task in ("classification", "regression"):
                for mode, scale in (("native", 1.0), ("confidential", 1.2)):
                    phases = []
                    for i, p in enumerate(PHASES, 1):
                        grows = 100 * size / 1e6 if p == "train" else 0.0
                        peak = 100.0 * rep + (size / 1000 if p == "train" else 0)
                        seconds = scale * (i + rep) + grows
                        phases.append(
                            Row(mode, task, dataset, size, rep, p, seconds, seconds / 2, 50.0, peak)
                        )
                    out += [*phases, total_row(phases)]
    return out


def test_group_phases_adds_up_parties() -> None:
    got = group_phases({"upload-alice": 1.0, "upload-bob": 2.0, "train": 3.0, "run-bob": 0.5})
    assert got == {
        "upload": 3.0,
        "fetch": 0.0,
        "train": 3.0,
        "publish": 0.0,
        "pull": 0.0,
        "run": 0.5,
    }


def test_report_has_targets_ratios_paper_and_machine() -> None:
    text = render_report(rows(), info(failures=("run 3 failed\nstep said why",)))
    assert "2 cores, Test CPU 9000" in text
    assert "SIMULATED" in text
    # totals: native reps 54 + 1.5 and 63 + 1.5 -> 60.00 (G adds 1.5 s of training)
    assert "| native | classification | G | 15,000 | 2 | **60.00** | 60.00 (55.50-64.50) |" in text
    assert "| classification | G | 60.00 | 71.70 | 1.195x | 30.00 | 35.85 | 1.195x |" in text
    assert "| whole flow, conf. / native, G | 1.195x | <= 1.2x | **PASS** |" in text
    assert (
        "| whole flow, conf. / native, L | - | <= 1.2x | **NOT RUN** | none (ran P, G only) |"
        in (text)
    )
    assert "| conf. whole flow, G (slower task) | 71.70 s | <= 15 s | **MISS** | 237 s |" in text
    assert "| native whole flow (mean over tasks) | 41 | 60.00 |" in text
    assert "| confidential whole flow (mean over tasks) | 237 | 71.70 |" in text
    for figure in ("| 107 |", "| 14 |"):
        assert figure in text
    assert "## Failed runs\n\n- run 3 failed\n\n  ```\n  step said why\n  ```" in text


@pytest.mark.parametrize(
    ("load", "line"),
    [
        ((), "- load: not recorded\n"),
        ((1.0, 1.5), "- load (1-minute load average after each run): mean 1.2, max 1.5\n"),
        (
            (5.0, 7.0),
            "- load (1-minute load average after each run): mean 6.0, max 7.0: **the machine "
            "was busy** (more runnable processes than its 2 cores)",
        ),
    ],
)
def test_report_says_how_loaded_the_machine_was(load: tuple[float, ...], line: str) -> None:
    text = render_report(rows(), info(load=load))
    assert line in text
    assert ("the machine was busy" in text) == (load == (5.0, 7.0))


def test_report_tells_the_projects_targets_from_the_papers_figures() -> None:
    text = render_report(rows(), info())
    targets = text[text.index("## Targets") : text.index("## Means per scenario")]
    assert "this project's own" in targets and "The paper\nsets none" in targets
    paper = text[text.index("## The paper's figures") :]
    assert "Luz & Brito" in paper and "not\ntargets" in paper


def test_report_names_only_files_that_exist() -> None:
    text = render_report(rows(), info())
    assert "work/storage" not in text and "OUT/" not in text
    assert "removed after the run" in text
    for name in ("results.csv", "bench.json", "phases.png", "resources.png"):
        assert f"`{name}`" in text


def test_report_explains_what_dominates_each_phase() -> None:
    text = render_report(rows(("P", "L"), reps=1), info())
    notes = text[text.index("## What dominates each phase") : text.index("## Every phase")]
    for group in ("upload", "fetch", "train", "publish", "pull", "run"):
        assert f"- **{group}**: confidential: " in notes
    train = notes[notes.index("- **train**") : notes.index("- **publish**")]
    # CPU s (half the wall seconds here): at P native 2.5075, confidential 3.0075; L adds
    # 74.9925 to both (50 CPU s per million rows)
    assert (
        "fixed cost (at P): native 2.51 CPU s, confidential 3.01 CPU s; `seml run` (attestation, "
        "key release, volumes, its own start) adds +0.50 CPU s." in train
    )
    assert "what the data adds (P to L): native +74.99 CPU s; confidential +74.99 CPU s" in train
    assert (
        "the data dominates: 96% of the confidential CPU time at L (50.0 CPU s per million rows)"
        in train
    )
    assert "peak 1600 MB" in train
    publish = notes[notes.index("- **publish**") : notes.index("- **pull**")]
    assert "the fixed cost dominates: 100% of the confidential CPU time at L" in publish
    assert "what the data adds (P to L): native +0.00 CPU s (nothing measurable);" in publish


def test_report_of_one_dataset_says_fixed_and_data_cannot_be_told_apart() -> None:
    notes = render_report(rows(("G",), reps=1), info())
    assert "one dataset only: fixed cost and data cannot be told apart" in notes


def test_every_phase_has_its_peak_memory_in_the_report() -> None:
    text = render_report(rows(("P", "L"), reps=1), info())
    table = text[text.index("## Every phase") : text.index("## The paper's figures")]
    assert table.count("\n| native |") + table.count("\n| confidential |") == 2 * 2 * 2 * 6
    assert "| confidential | regression | L | train | 1 | 156 | 156-156 | 78.00 | 50 | 1600 |" in (
        table
    )


def _boxes(ax: Any) -> int:
    return len(ax.patches)  # boxplot(patch_artist=True) draws each box as a patch


def test_figures_with_one_repetition_show_points_on_axes_from_zero() -> None:
    data = rows(("P", "G", "L"), reps=1)
    resources = resources_figure(data)
    axes = resources.axes
    assert len(axes) == 6  # CPU and memory, per dataset
    assert [ax.get_title() for ax in axes[:3]] == [
        "P: 150 rows; 1 run each",
        "G: 15,000 rows; 1 run each",
        "L: 1,500,000 rows; 1 run each",
    ]
    for ax in axes:
        assert ax.get_ylim()[0] == 0
        assert _boxes(ax) == 0
        points = sum(len(c.get_offsets()) for c in ax.collections)
        assert points == 2 * 2 * 6  # a point per (mode, task, phase): nothing collapsed
    assert [t.get_text() for t in axes[0].get_xticklabels()] == [
        "upload",
        "fetch",
        "train",
        "publish",
        "pull",
        "run",
    ]
    phases = phases_figure(data)
    for ax in phases.axes:
        assert ax.get_ylim()[0] == 0
        assert not ax.lines  # one run: no whisker pretending to be a spread


def test_figures_with_many_repetitions_show_boxes_and_the_spread() -> None:
    data = rows(("G",), reps=BOX_FROM)
    (cpu, memory) = resources_figure(data).axes
    assert _boxes(cpu) == _boxes(memory) == 2 * 2 * 6  # a box per (mode, task, phase)
    fig = phases_figure(data)
    (ax,) = fig.axes
    assert ax.get_title() == "G: 15,000 rows"
    whiskers = [c for c in ax.collections if c.__class__.__name__ == "LineCollection"]
    assert whiskers  # min-max of the totals
    # the labels above the bars stay inside the panel, and the legend outside every panel
    top = ax.get_ylim()[1]
    labels = [t for t in ax.texts if t.get_text().endswith(f"n={BOX_FROM}")]
    assert len(labels) == 4 and all(t.xy[1] < top for t in labels)
    fig.canvas.draw()
    (legend,) = fig.legends
    legend_box = legend.get_window_extent()
    assert all(legend_box.x0 >= a.get_window_extent().x1 for a in fig.axes)


def results_folder(tmp_path: Path, data: list[Row], with_info: bool = True) -> Path:
    out = tmp_path / "results"
    out.mkdir()
    write_csv(out / "results.csv", data)
    if with_info:
        write_info(out, info(failures=("conf/cla/G repetition 2: step failed",)))
    return out


def test_rebuild_makes_figures_and_report_from_results_csv(tmp_path: Path) -> None:
    out = results_folder(tmp_path, rows(("P", "L"), reps=1))
    assert len(rebuild(out)) == len(rows(("P", "L"), reps=1))
    assert sorted(p.name for p in out.iterdir()) == RESULT_FILES
    for name in ("phases.png", "resources.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "- machine: 2 cores, Test CPU 9000" in report
    # bench.json planned 2 repetitions; results.csv has 1
    assert (
        "- repetitions: 2 per scenario on P; 1 on the large L planned; the tables' runs column "
        "counts those that finished" in report
    )
    assert "- conf/cla/G repetition 2: step failed" in report  # failures survive a rebuild


def test_rebuild_without_bench_json_says_what_is_not_recorded(tmp_path: Path) -> None:
    out = results_folder(tmp_path, rows(("G",), reps=3), with_info=False)
    rebuild(out)
    report = (out / "report.md").read_text()
    assert "- machine: not recorded" in report
    assert "- repetitions: 3 per scenario on G\n" in report
    assert not (out / "bench.json").exists()


def test_bench_info_round_trip(tmp_path: Path) -> None:
    write_info(tmp_path, info(failures=("a\nb",), load=(0.5, 2.25)))
    assert read_info(tmp_path, []) == info(failures=("a\nb",), load=(0.5, 2.25))
    (tmp_path / "bench.json").write_text(json.dumps({"started": "x"}))
    with pytest.raises(UsageError, match="not a bench info file"):
        read_info(tmp_path, [])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda d: None, "has no results.csv"),
        (lambda d: (d / "results.csv").write_text("a,b\n1,2\n"), "missing columns"),
        (lambda d: write_csv(d / "results.csv", []), "has no runs"),
    ],
)
def test_rebuild_refuses_what_is_not_a_results_folder(
    tmp_path: Path, make: Any, message: str
) -> None:
    make(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    with pytest.raises(UsageError, match=message):
        rebuild(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing half-written
