"""The benchmark's scenarios: mode x task x dataset (the paper's P and G, and a large one)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from seml.bench._results import MODES, TASKS
from seml.errors import UsageError

__all__ = [
    "DATASETS",
    "IRIS_ROWS",
    "LARGE_ROWS",
    "MODES",
    "TASKS",
    "Dataset",
    "Scenario",
    "dataset_for_rows",
    "scenarios",
]

IRIS_ROWS = 150
# From this many rows on a dataset is "large": it runs at the reduced repetitions (a run of
# 1.5 M rows takes minutes where one of G takes seconds).
LARGE_ROWS = 150_000


@dataclass(frozen=True)
class Dataset:
    """Iris repeated `factor` times; `label` is how tables and filters name it."""

    label: str
    factor: int

    @property
    def rows(self) -> int:
        return IRIS_ROWS * self.factor

    @property
    def large(self) -> bool:
        return self.rows >= LARGE_ROWS

    @property
    def flow_dataset(self) -> str:
        return "iris" if self.factor == 1 else "iris-large"

    @property
    def description(self) -> str:
        copies = "Iris" if self.factor == 1 else f"Iris x {self.factor:,}"
        return f"{self.label} ({copies} = {self.rows:,} rows)"


# P and G are the paper's; L is ours: a size where data volume, not process start, dominates.
DATASETS = (Dataset("P", 1), Dataset("G", 100), Dataset("L", 10_000))


def dataset_for_rows(rows: int) -> Dataset:
    """A `--scale` dataset: Iris repeated to `rows` rows (a multiple of 150); the named one
    when a named dataset has that many rows (`--scale 1500000` is L)."""
    if rows < IRIS_ROWS or rows % IRIS_ROWS:
        raise UsageError(
            f"--scale {rows}: give a row count that is a multiple of {IRIS_ROWS} (Iris is "
            f"repeated), e.g. 1500000"
        )
    named = [d for d in DATASETS if d.rows == rows]
    return named[0] if named else Dataset(f"S{rows}", rows // IRIS_ROWS)


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


_ROWS_LABEL = re.compile(r"S(\d+)")


def _label_of(value: str, sets: Sequence[Dataset]) -> str:
    """`--dataset S1500000` names L too (the label `--scale` would have given it)."""
    m = _ROWS_LABEL.fullmatch(value)
    if m:
        for d in sets:
            if d.rows == int(m[1]):
                return d.label
    return value


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
    all_sets = list(dict.fromkeys([*DATASETS, *(dataset_for_rows(r) for r in scale)]))
    labels = [d.label for d in all_sets]
    chosen = _pick([_label_of(v, all_sets) for v in datasets], labels, "--dataset")
    return [
        Scenario(mode, task, d)
        for d in all_sets
        if d.label in chosen
        for task in _pick(tasks, TASKS, "--task")
        for mode in _pick(modes, MODES, "--mode")
    ]
