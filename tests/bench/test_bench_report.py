"""report.md and the figures, from synthetic rows."""

from __future__ import annotations

from pathlib import Path

import pytest

from seml.bench import (
    Machine,
    Row,
    plot_phases,
    plot_resources,
    render_report,
    scenario_stats,
    total_row,
)
from seml.bench._report import group_phases

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


def rows() -> list[Row]:
    out: list[Row] = []
    for mode, scale in (("native", 1.0), ("confidential", 1.2)):
        for task in ("classification", "regression"):
            for rep in (1, 2):
                phases = [
                    Row(mode, task, "G", 15_000, rep, p, scale * (i + rep), 0.5, 50.0, 100.0 * rep)
                    for i, p in enumerate(PHASES, 1)
                ]
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
    text = render_report(
        rows(),
        started="now",
        repetitions=2,
        storage="file:///x",
        host=HOST,
        failures=["run 3 failed\nstep said why"],
    )
    assert "2 cores, Test CPU 9000" in text
    assert "SIMULATED" in text
    # totals: native reps 54 and 63 -> 58.5; confidential 1.2x that
    assert "| native | classification | G | 15,000 | 2 | **58.50** | 58.50 (54.00-63.00) |" in text
    assert "| classification | G | 1.20x |" in text
    assert "| regression | G | 1.20x |" in text
    assert "| whole flow, confidential / native, G | 1.200x | <= 1.5x | **PASS** |" in text
    assert "| confidential whole flow, G (slower task) | 70.20 s | <= 15 s | **MISS** |" in text
    assert "| native whole flow (mean over tasks) | 41 | 58.50 |" in text
    assert "| confidential whole flow (mean over tasks) | 237 | 70.20 |" in text
    for figure in ("| 107 |", "| 14 |"):
        assert figure in text
    assert "## Failed runs\n\n- run 3 failed\n\n  ```\n  step said why\n  ```" in text


@pytest.mark.slow
def test_figures_are_png_images(tmp_path: Path) -> None:
    import matplotlib.image

    data = rows()
    plot_phases(scenario_stats(data), tmp_path / "phases.png")
    plot_resources(data, tmp_path / "resources.png")
    for name in ("phases.png", "resources.png"):
        image = matplotlib.image.imread(tmp_path / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["phases.png", "resources.png"]
