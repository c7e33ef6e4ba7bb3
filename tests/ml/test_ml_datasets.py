"""Built-in datasets and the deterministic shard/holdout splits."""

from __future__ import annotations

import pandas as pd
import pytest

from seml.errors import UsageError
from seml.ml import IRIS_FEATURES, enlarge, holdout, iris_frame, split_parties, synthetic


def test_iris_classification_and_regression_frames() -> None:
    cls = iris_frame("classification")
    assert list(cls.columns) == [*IRIS_FEATURES, "species"]
    assert len(cls) == 150
    assert cls["species"].value_counts().to_dict() == {
        "setosa": 50,
        "versicolor": 50,
        "virginica": 50,
    }
    reg = iris_frame("regression")
    assert list(reg.columns) == list(IRIS_FEATURES)
    pd.testing.assert_frame_equal(reg, cls[list(IRIS_FEATURES)])


def test_enlarged_iris_is_the_papers_15000_rows_in_order() -> None:
    base = iris_frame("classification")
    large = enlarge(base, 100)
    assert len(large) == 15_000
    pd.testing.assert_frame_equal(large.iloc[150:300].reset_index(drop=True), base)
    with pytest.raises(UsageError, match="enlarge factor must be at least 1, got 0"):
        enlarge(base, 0)


@pytest.mark.parametrize("task", ["classification", "regression"])
def test_synthetic_is_deterministic_per_seed(task: str) -> None:
    a = synthetic(200, task, 5, features=4)  # type: ignore[arg-type]
    assert list(a.columns) == ["x00", "x01", "x02", "x03", "target"]
    assert len(a) == 200
    pd.testing.assert_frame_equal(a, synthetic(200, task, 5, features=4))  # type: ignore[arg-type]
    assert not a.equals(synthetic(200, task, 6, features=4))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="need at least 10 rows, got 5"):
        synthetic(5, task, 0)  # type: ignore[arg-type]


def test_split_parties_gives_disjoint_shards_covering_every_row() -> None:
    frame = iris_frame("classification").reset_index(names="id")
    shards = split_parties(frame, 3, seed=1)
    assert [len(s) for s in shards] == [50, 50, 50]
    ids = [set(s["id"]) for s in shards]
    assert not (ids[0] & ids[1]) and not (ids[1] & ids[2]) and not (ids[0] & ids[2])
    assert set().union(*ids) == set(range(150))
    again = split_parties(frame, 3, seed=1)
    for s, t in zip(shards, again, strict=True):
        pd.testing.assert_frame_equal(s, t)
    assert [len(s) for s in split_parties(frame.head(7), 3, seed=0)] == [3, 2, 2]
    with pytest.raises(UsageError, match="need at least one party, got 0"):
        split_parties(frame, 0, seed=0)


def test_holdout_keeps_rows_back() -> None:
    frame = iris_frame("regression").reset_index(names="id")
    rest, held = holdout(frame, 15, seed=2)
    assert (len(rest), len(held)) == (135, 15)
    assert not set(rest["id"]) & set(held["id"])
    assert set(rest["id"]) | set(held["id"]) == set(range(150))
    with pytest.raises(UsageError, match="cannot hold out 150 of 150 rows"):
        holdout(frame, 150, seed=0)
