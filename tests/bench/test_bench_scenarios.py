"""Which scenarios `seml bench` runs."""

from __future__ import annotations

import pytest

from seml.bench import dataset_for_rows, scenarios
from seml.errors import UsageError


def test_the_papers_eight_scenarios() -> None:
    got = scenarios()
    assert len(got) == 8
    assert {(s.mode, s.task, s.dataset.label, s.dataset.rows) for s in got} == {
        (m, t, d, rows)
        for m in ("native", "confidential")
        for t in ("classification", "regression")
        for d, rows in (("P", 150), ("G", 15_000))
    }
    # native and confidential of the same (task, dataset) run back to back
    assert [s.mode for s in got[:2]] == ["native", "confidential"]
    assert got[0].task == got[1].task and got[0].dataset == got[1].dataset


def test_filters_and_scale() -> None:
    got = scenarios(scale=[1_500_000], modes=["confidential"], datasets=["S1500000"])
    assert [(s.mode, s.task, s.dataset.label) for s in got] == [
        ("confidential", "classification", "S1500000"),
        ("confidential", "regression", "S1500000"),
    ]
    assert got[0].dataset.factor == 10_000
    assert got[0].dataset.flow_dataset == "iris-large"
    assert len(scenarios(scale=[300])) == 12
    only = scenarios(tasks=["regression"], datasets=["P"])
    assert [(s.mode, s.dataset.flow_dataset) for s in only] == [
        ("native", "iris"),
        ("confidential", "iris"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"modes": ["sgx"]}, "--mode 'sgx'"),
        ({"tasks": ["clustering"]}, "--task 'clustering'"),
        ({"datasets": ["L"]}, "--dataset 'L'"),
    ],
)
def test_unknown_filters_are_refused(kwargs: dict[str, list[str]], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        scenarios(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("rows", [0, 100, 1001])
def test_scale_must_be_whole_iris_copies(rows: int) -> None:
    with pytest.raises(UsageError, match="multiple of 150"):
        dataset_for_rows(rows)
