"""Writing a built-in dataset as the parties would hold it: disjoint shards, a holdout, a spec."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from seml._fs import staged
from seml.errors import StorageError, UsageError
from seml.ml._datasets import enlarge, holdout, iris_frame, split_parties, synthetic, target_column
from seml.ml._spec import Task, parse_spec

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DATASETS", "WrittenDataset", "make_dataset", "write_dataset"]

DATASETS = ("iris", "iris-large", "synthetic")


@dataclass(frozen=True)
class WrittenDataset:
    """Where `write_dataset` put things, and how many rows each holds."""

    name: str
    task: Task
    target: str
    rows: int
    shards: dict[str, Path]  # party name -> OUT/parties/<name>.csv
    shard_rows: dict[str, int]
    holdout: Path | None
    holdout_rows: int
    spec: Path


def make_dataset(
    name: str,
    task: Task,
    *,
    seed: int = 0,
    rows: int = 10_000,
    features: int = 8,
    factor: int = 100,
) -> pd.DataFrame:
    """The table of a built-in dataset: 'iris', 'iris-large' (Iris x `factor`) or 'synthetic'."""
    if name == "synthetic":
        return synthetic(rows, task, seed, features=features)
    if name in ("iris", "iris-large"):
        frame = iris_frame(task)
        return enlarge(frame, factor) if name == "iris-large" else frame
    raise UsageError(f"unknown dataset {name!r} (choose from {', '.join(DATASETS)})")


def write_dataset(
    frame: pd.DataFrame,
    out: Path,
    *,
    name: str,
    task: Task,
    parties: list[str],
    holdout_rows: int = 0,
    seed: int = 0,
) -> WrittenDataset:
    """Split `frame` into OUT/parties/<party>.csv (disjoint), OUT/holdout.csv and OUT/spec.yaml.

    The holdout rows are taken first and are in no shard. The spec trains a RandomForest (100
    trees, the same seed) on the dataset's target; train on OUT/parties.
    """
    for party in parties:
        if not party or party.startswith(".") or "/" in party or "\\" in party:
            raise UsageError(f"{party!r} is not a usable party name")
    if len(set(parties)) != len(parties):
        raise UsageError("a party is named twice")
    target = target_column(name, task)
    rest, held = holdout(frame, holdout_rows, seed)
    shards = split_parties(rest, len(parties), seed)
    kind = "Classifier" if task == "classification" else "Regressor"
    spec: dict[str, Any] = {
        "task": task,
        "target": target,
        "estimator": f"sklearn.ensemble.RandomForest{kind}",
        "params": {"n_estimators": 100},
        "split": 0.2,
        "seed": seed,
    }
    parse_spec(spec)  # what we write must load
    shard_paths = {p: out / "parties" / f"{p}.csv" for p in parties}
    spec_path, holdout_path = out / "spec.yaml", out / "holdout.csv"
    finals = [*shard_paths.values(), spec_path] + ([holdout_path] if holdout_rows else [])
    with staged(*finals) as temps:
        try:
            for shard, tmp in zip(shards, temps, strict=False):
                shard.to_csv(tmp, index=False)
            temps[len(shards)].write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
            if holdout_rows:
                held.to_csv(temps[-1], index=False)
        except OSError as e:
            raise StorageError(f"cannot write the dataset into {out}: {e.strerror or e}") from e
    return WrittenDataset(
        name=name,
        task=task,
        target=target,
        rows=len(frame),
        shards=shard_paths,
        shard_rows={p: len(s) for p, s in zip(parties, shards, strict=True)},
        holdout=holdout_path if holdout_rows else None,
        holdout_rows=holdout_rows,
        spec=spec_path,
    )
