"""Which scenarios `seml bench` runs, and how often."""

from __future__ import annotations

from pathlib import Path

import pytest

from seml.bench import BenchOptions, dataset_for_rows, scenarios
from seml.errors import UsageError


def test_the_papers_eight_scenarios_and_a_large_one() -> None:
    got = scenarios()
    assert len(got) == 12
    assert {(s.mode, s.task, s.dataset.label, s.dataset.rows) for s in got} == {
        (m, t, d, rows)
        for m in ("native", "confidential")
        for t in ("classification", "regression")
        for d, rows in (("P", 150), ("G", 15_000), ("L", 1_500_000))
    }
    assert [s.dataset.large for s in got] == [False] * 8 + [True] * 4
    # native and confidential of the same (task, dataset) run back to back
    assert [s.mode for s in got[:2]] == ["native", "confidential"]
    assert got[0].task == got[1].task and got[0].dataset == got[1].dataset


def test_filters_and_scale() -> None:
    got = scenarios(scale=[300_000], modes=["confidential"], datasets=["S300000"])
    assert [(s.mode, s.task, s.dataset.label) for s in got] == [
        ("confidential", "classification", "S300000"),
        ("confidential", "regression", "S300000"),
    ]
    assert got[0].dataset.factor == 2_000
    assert got[0].dataset.flow_dataset == "iris-large"
    assert got[0].dataset.large
    assert len(scenarios(scale=[300])) == 16
    assert not scenarios(scale=[300], datasets=["S300"])[0].dataset.large
    only = scenarios(tasks=["regression"], datasets=["P"])
    assert [(s.mode, s.dataset.flow_dataset) for s in only] == [
        ("native", "iris"),
        ("confidential", "iris"),
    ]


def test_a_scale_of_a_named_size_is_that_dataset() -> None:
    assert dataset_for_rows(1_500_000).label == "L"
    assert dataset_for_rows(15_000).label == "G"
    # --scale 1500000 adds nothing to the default set, and S1500000 names L
    assert scenarios(scale=[1_500_000]) == scenarios()
    by_rows = scenarios(datasets=["S1500000"], tasks=["regression"])
    assert [(s.mode, s.dataset.label) for s in by_rows] == [
        ("native", "L"),
        ("confidential", "L"),
    ]


def test_large_datasets_run_at_reduced_repetitions(tmp_path: Path) -> None:
    picked = scenarios(tasks=["classification"], modes=["native"], datasets=["G", "L"])
    options = BenchOptions(tmp_path, picked, repetitions=3, large_repetitions=2)
    assert [(rep, s.dataset.label) for rep, s in options.runs()] == [
        (1, "G"),
        (1, "L"),
        (2, "G"),
        (2, "L"),
        (3, "G"),
    ]
    # never more large runs than the others get
    fewer = BenchOptions(tmp_path, picked, repetitions=1, large_repetitions=2)
    assert [(rep, s.dataset.label) for rep, s in fewer.runs()] == [(1, "G"), (1, "L")]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modes": ["sgx"]}, "--mode 'sgx'"),
        ({"tasks": ["clustering"]}, "--task 'clustering'"),
        ({"datasets": ["X"]}, "--dataset 'X'"),
        ({"datasets": ["S300"]}, "--dataset 'S300'"),  # no such --scale given
    ],
)
def test_unknown_filters_are_refused(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        scenarios(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rows", [0, 100, 1001])
def test_scale_must_be_whole_iris_copies(rows: int) -> None:
    with pytest.raises(UsageError, match="multiple of 150"):
        dataset_for_rows(rows)
