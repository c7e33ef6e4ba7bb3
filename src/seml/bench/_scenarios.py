"""The benchmark's scenarios: the paper's 8 (mode x task x dataset P/G), plus larger datasets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from seml.bench._results import MODES, TASKS
from seml.errors import UsageError

__all__ = [
    "DATASETS",
    "IRIS_ROWS",
    "MODES",
    "TASKS",
    "Dataset",
    "Scenario",
    "dataset_for_rows",
    "scenarios",
]

IRIS_ROWS = 150


@dataclass(frozen=True)
class Dataset:
    """Iris repeated `factor` times; `label` is how tables and filters name it."""

    label: str
    factor: int

    @property
    def rows(self) -> int:
        return IRIS_ROWS * self.factor

    @property
    def flow_dataset(self) -> str:
        return "iris" if self.factor == 1 else "iris-large"


DATASETS = (Dataset("P", 1), Dataset("G", 100))


def dataset_for_rows(rows: int) -> Dataset:
    """A `--scale` dataset: Iris repeated to `rows` rows (a multiple of 150)."""
    if rows < IRIS_ROWS or rows % IRIS_ROWS:
        raise UsageError(
            f"--scale {rows}: give a row count that is a multiple of {IRIS_ROWS} (Iris is "
            f"repeated), e.g. 1500000"
        )
    return Dataset(f"S{rows}", rows // IRIS_ROWS)


@dataclass(frozen=True)
class Scenario:
    mode: str
    task: str
    dataset: Dataset

    @property
    def name(self) -> str:
        """Short label for plots: e.g. conf/cls/G."""
        return f"{self.mode[:4]}/{self.task[:3]}/{self.dataset.label}"


def _pick(values: Sequence[str], allowed: Sequence[str], option: str) -> list[str]:
    if not values:
        return list(allowed)
    unknown = [v for v in values if v not in allowed]
    if unknown:
        raise UsageError(f"{option} {unknown[0]!r}: choose from {', '.join(allowed)}")
    return [v for v in allowed if v in values]


def scenarios(
    *,
    scale: Sequence[int] = (),
    modes: Sequence[str] = (),
    tasks: Sequence[str] = (),
    datasets: Sequence[str] = (),
) -> list[Scenario]:
    """Every (dataset, task, mode) combination left after the filters; empty filter = all.

    Native and confidential of the same (task, dataset) are adjacent so that a repetition
    measures both under the same machine load.
    """
    all_sets = [*DATASETS, *(dataset_for_rows(r) for r in scale)]
    labels = list(dict.fromkeys(d.label for d in all_sets))
    chosen = _pick(datasets, labels, "--dataset")
    picked_sets = [d for d in dict.fromkeys(all_sets) if d.label in chosen]
    return [
        Scenario(mode, task, d)
        for d in picked_sets
        for task in _pick(tasks, TASKS, "--task")
        for mode in _pick(modes, MODES, "--mode")
    ]
