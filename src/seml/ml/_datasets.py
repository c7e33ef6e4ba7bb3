"""Datasets for the demo and the benchmark: Iris (bundled with scikit-learn, no download), the
paper's enlarged Iris (repeated 100 times: 15,000 rows), synthetic sets for scale, and the
deterministic shuffles that split a table between parties and keep some rows back."""

from __future__ import annotations

from typing import TYPE_CHECKING

from seml.errors import UsageError
from seml.ml._spec import Task

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "IRIS_FEATURES",
    "enlarge",
    "holdout",
    "iris_frame",
    "split_parties",
    "synthetic",
    "target_column",
]

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
_TASKS = ("classification", "regression")


def target_column(dataset: str, task: Task) -> str:
    """The target column of a built-in dataset ('iris', 'iris-large' or 'synthetic')."""
    if dataset in ("iris", "iris-large"):
        return "species" if task == "classification" else "petal_width"
    if dataset == "synthetic":
        return "target"
    raise UsageError(f"unknown dataset {dataset!r} (iris, iris-large, synthetic)")


def _check_task(task: str) -> None:
    if task not in _TASKS:
        raise UsageError(f"unknown task {task!r} (classification or regression)")


def iris_frame(task: Task) -> pd.DataFrame:
    """The 150-row Iris table.

    classification: the four measures (cm) and ``species`` (setosa, versicolor, virginica).
    regression: ``petal_width`` is the target, predicted from the other three measures;
    the species column is left out.
    """
    import pandas as pd
    from sklearn.datasets import load_iris

    _check_task(task)
    bunch = load_iris()
    frame = pd.DataFrame(bunch.data, columns=list(IRIS_FEATURES))
    if task == "classification":
        frame["species"] = [str(bunch.target_names[i]) for i in bunch.target]
    return frame


def enlarge(frame: pd.DataFrame, factor: int) -> pd.DataFrame:
    """`frame` repeated `factor` times in order (Iris x 100 = the paper's 15,000 rows)."""
    import pandas as pd

    if factor < 1:
        raise UsageError(f"enlarge factor must be at least 1, got {factor}")
    return pd.concat([frame] * factor, ignore_index=True)


def synthetic(rows: int, task: Task, seed: int, *, features: int = 8) -> pd.DataFrame:
    """A synthetic table for scale: columns ``x00``.. and ``target``.

    classification: make_classification, three classes labelled 0..2; regression:
    make_regression with noise. Same arguments, same table.
    """
    import pandas as pd
    from sklearn.datasets import make_classification, make_regression

    _check_task(task)
    if rows < 10:
        raise UsageError(f"synthetic datasets need at least 10 rows, got {rows}")
    if not 2 <= features <= 1000:
        raise UsageError(f"synthetic datasets have 2..1000 features, got {features}")
    if task == "classification":
        x, y = make_classification(
            n_samples=rows,
            n_features=features,
            n_informative=max(2, features // 2),
            n_redundant=0,
            n_classes=3,
            n_clusters_per_class=1,
            random_state=seed,
        )
    else:
        x, y = make_regression(
            n_samples=rows,
            n_features=features,
            n_informative=max(1, features // 2),
            noise=5.0,
            random_state=seed,
        )
    frame = pd.DataFrame(x, columns=[f"x{i:02d}" for i in range(features)])
    frame["target"] = y
    return frame


def _shuffled(frame: pd.DataFrame, seed: int) -> pd.DataFrame:
    import numpy as np

    order = np.random.default_rng(seed).permutation(len(frame))
    return frame.iloc[order].reset_index(drop=True)


def split_parties(frame: pd.DataFrame, parties: int, seed: int) -> list[pd.DataFrame]:
    """Shuffle the rows (seeded) and cut them into `parties` disjoint shards of near-equal size."""
    if parties < 1:
        raise UsageError(f"need at least one party, got {parties}")
    if parties > len(frame):
        raise UsageError(f"cannot split {len(frame)} rows between {parties} parties")
    shuffled = _shuffled(frame, seed)
    size, extra = divmod(len(shuffled), parties)
    shards = []
    start = 0
    for i in range(parties):
        stop = start + size + (1 if i < extra else 0)
        shards.append(shuffled.iloc[start:stop].reset_index(drop=True))
        start = stop
    return shards


def holdout(frame: pd.DataFrame, rows: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Keep `rows` randomly chosen rows back: returns (the rest, the held-out rows)."""
    if not 0 <= rows < len(frame):
        raise UsageError(f"cannot hold out {rows} of {len(frame)} rows")
    shuffled = _shuffled(frame, seed)
    rest = shuffled.iloc[rows:].reset_index(drop=True)
    held = shuffled.iloc[:rows].reset_index(drop=True)
    return rest, held
