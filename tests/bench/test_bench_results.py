"""Aggregation of bench rows: totals, means, ratios, targets, CSV (pure, synthetic rows)."""

from __future__ import annotations

from pathlib import Path

import pytest

from seml.bench import (
    COLUMNS,
    Row,
    phase_means,
    phase_runs,
    phase_stats,
    ratios,
    read_csv,
    scenario_stats,
    targets,
    total_row,
    write_csv,
)
from seml.errors import UsageError

PHASES = ("upload-alice", "upload-bob", "fetch", "train", "publish", "pull-alice", "run-alice")


def row(mode: str, task: str, dataset: str, rep: int, phase: str, seconds: float) -> Row:
    cpu = seconds / 2
    return Row(mode, task, dataset, 150, rep, phase, seconds, cpu, 50.0, 100.0 + seconds)


def run(mode: str, task: str, dataset: str, rep: int, seconds: dict[str, float]) -> list[Row]:
    phases = [row(mode, task, dataset, rep, p, s) for p, s in seconds.items()]
    return [*phases, total_row(phases)]


def test_total_sums_time_weights_cpu_and_takes_the_peak() -> None:
    phases = [
        Row("native", "classification", "P", 150, 1, "fetch", 1.0, 1.0, 100.0, 50.0),
        Row("native", "classification", "P", 150, 1, "train", 3.0, 0.5, 16.7, 300.0),
    ]
    t = total_row(phases)
    assert t.phase == "total"
    assert t.seconds == pytest.approx(4.0)
    assert t.cpu_seconds == pytest.approx(1.5)
    assert t.cpu_percent == pytest.approx(37.5)  # 1.5 CPU s over 4 wall s, not mean(100, 16.7)
    assert t.peak_rss_mb == 300.0
    assert (t.mode, t.task, t.dataset, t.rows, t.repetition) == (
        "native",
        "classification",
        "P",
        150,
        1,
    )


def test_total_of_nothing_is_refused() -> None:
    with pytest.raises(UsageError, match="a run without phases has no total"):
        total_row([])


def test_means_per_scenario_in_flow_order() -> None:
    rows = [
        *run("native", "classification", "G", 1, {"train": 2.0, "fetch": 1.0, "upload-bob": 0.5}),
        *run("native", "classification", "G", 2, {"train": 4.0, "fetch": 3.0, "upload-bob": 1.5}),
    ]
    means = phase_means(rows)[("native", "classification", "G")]
    assert list(means) == ["upload-bob", "fetch", "train"]
    assert means == {"upload-bob": 1.0, "fetch": 2.0, "train": 3.0}
    (s,) = scenario_stats(rows)
    assert s.runs == 2
    assert s.seconds == pytest.approx(6.0)  # totals 3.5 and 8.5
    assert s.seconds_median == pytest.approx(6.0)
    assert s.seconds_min == pytest.approx(3.5) and s.seconds_max == pytest.approx(8.5)
    assert "total" not in s.phases


def test_ratio_and_targets() -> None:
    rows = []
    for task, native, conf in (("classification", 8.0, 10.0), ("regression", 6.0, 14.0)):
        rows += run("native", task, "G", 1, {"train": native})
        rows += run("confidential", task, "G", 1, {"train": conf})
        rows += run("native", task, "P", 1, {"train": 1.0})
    stats = scenario_stats(rows)
    got = ratios(stats)
    assert got == {
        ("classification", "G"): pytest.approx(1.25),
        ("regression", "G"): pytest.approx(14 / 6),
    }  # P has no confidential run: no ratio
    ratio_g, ratio_l, seconds = targets(stats)
    assert ratio_g.name == "whole flow, conf. / native, G"
    assert ratio_g.value == pytest.approx(24 / 14)
    assert (ratio_g.limit, ratio_g.status) == (1.2, "MISS")
    assert (ratio_l.value, ratio_l.status) == (None, "NOT RUN")  # no L run
    assert seconds.value == pytest.approx(14.0)
    assert seconds.status == "PASS"


def test_targets_pass_and_not_run() -> None:
    rows = [*run("native", "classification", "G", 1, {"train": 10.0})]
    rows += run("confidential", "classification", "G", 1, {"train": 11.9})
    rows += run("native", "regression", "L", 1, {"train": 100.0})
    rows += run("confidential", "regression", "L", 1, {"train": 121.0})
    assert [t.status for t in targets(scenario_stats(rows))] == ["PASS", "MISS", "PASS"]
    slow = run("confidential", "regression", "G", 1, {"train": 15.5})
    assert targets(scenario_stats([*rows, *slow]))[2].status == "MISS"
    assert [
        t.status for t in targets(scenario_stats(run("native", "regression", "P", 1, {"x": 1})))
    ] == ["NOT RUN"] * 3


def test_targets_say_which_figures_are_the_papers() -> None:
    by_name = {t.name: t.paper for t in targets([])}
    assert by_name == {
        "whole flow, conf. / native, G": "5.8x (237 s / 41 s)",
        "whole flow, conf. / native, L": "none (ran P, G only)",
        "conf. whole flow, G (slower task)": "237 s",
    }


def test_phase_runs_add_up_parties_and_phase_stats_take_the_peak() -> None:
    rows = [
        *run("native", "classification", "G", 1, {"upload-alice": 1.0, "upload-bob": 3.0}),
        *run("native", "classification", "G", 2, {"upload-alice": 2.0, "upload-bob": 2.0}),
    ]
    runs = phase_runs(rows)
    assert [(p.repetition, p.group, p.seconds, p.cpu_seconds, p.peak_rss_mb) for p in runs] == [
        (1, "upload", 4.0, 2.0, 103.0),  # peak: the larger party's (100 + its seconds)
        (2, "upload", 4.0, 2.0, 102.0),
    ]
    assert runs[0].cpu_percent == pytest.approx(50.0)
    (upload,) = phase_stats(rows)
    assert (upload.group, upload.runs, upload.seconds) == ("upload", 2, 4.0)
    assert (upload.seconds_min, upload.seconds_max, upload.peak_rss_mb) == (4.0, 4.0, 103.0)
    assert upload.cpu_percent == pytest.approx(50.0)


def test_csv_round_trip(tmp_path: Path) -> None:
    rows = run("confidential", "regression", "S1500", 3, dict.fromkeys(PHASES, 1.25))
    path = tmp_path / "results.csv"
    write_csv(path, rows)
    assert path.read_text().splitlines()[0] == ",".join(COLUMNS)
    assert read_csv(path) == rows
    assert [p.name for p in tmp_path.iterdir()] == ["results.csv"]  # no temp file left


def test_read_csv_refuses_a_foreign_file(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(UsageError, match="missing columns"):
        read_csv(path)
    with pytest.raises(UsageError, match="cannot read"):
        read_csv(tmp_path / "absent.csv")


def test_scenarios_keep_the_tables_order_when_a_first_run_failed() -> None:
    rows = [
        *run("native", "regression", "P", 1, {"train": 1.0}),
        *run("native", "classification", "P", 1, {"train": 1.0}),
        # confidential classification P repetition 1 failed: its first rows come last
        *run("native", "classification", "G", 1, {"train": 1.0}),
        *run("confidential", "classification", "P", 2, {"train": 1.0}),
    ]
    assert [(s.mode, s.task, s.dataset) for s in scenario_stats(rows)] == [
        ("native", "classification", "P"),
        ("confidential", "classification", "P"),
        ("native", "regression", "P"),
        ("native", "classification", "G"),
    ]
