"""The ML provider: train the estimator a spec declares on a combined table, and report metrics."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seml._fs import staged
from seml.errors import StorageError, UsageError
from seml.ml._modelfile import file_sha256, write_model
from seml.ml._spec import TrainingSpec, resolve_estimator
from seml.ml._tables import load_datasets

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRICS_FILE", "MODEL_FILE", "TrainResult", "build_estimator", "train", "train_folder"]

MODEL_FILE = "model.skops"
METRICS_FILE = "metrics.json"


@dataclass(frozen=True)
class TrainResult:
    """A fitted model and what is known about how it was made."""

    model: Any
    task: str
    target: str
    features: list[str]
    estimator: str
    params: dict[str, Any]
    metrics: dict[str, float | None]
    evaluated_on: str  # "test" (held-out rows) or "train" (split = 0)
    rows_train: int
    rows_test: int
    seed: int
    sklearn_version: str
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """The JSON-serialisable record written as metrics.json."""
        return {
            "task": self.task,
            "target": self.target,
            "features": self.features,
            "estimator": self.estimator,
            "params": self.params,
            "seed": self.seed,
            "rows": {"train": self.rows_train, "test": self.rows_test},
            "evaluated_on": self.evaluated_on,
            "metrics": self.metrics,
            "sklearn_version": self.sklearn_version,
            **self.extra,
        }


def build_estimator(spec: TrainingSpec) -> Any:
    """The unfitted estimator of `spec`.

    ``random_state`` defaults to the spec's seed and ``n_jobs`` to 1 when the estimator takes
    them and the spec does not set them, so the same spec on the same rows gives the same model.
    """
    cls = resolve_estimator(spec.estimator, spec.task)
    try:
        estimator = cls(**spec.params)
    except TypeError as e:
        raise UsageError(f"bad params for {spec.estimator}: {e}") from e
    accepted = estimator.get_params(deep=False)
    defaults: dict[str, Any] = {}
    if "random_state" in accepted and "random_state" not in spec.params:
        defaults["random_state"] = spec.seed
    if "n_jobs" in accepted and "n_jobs" not in spec.params:
        defaults["n_jobs"] = 1
    if defaults:
        estimator.set_params(**defaults)
    return estimator


def _columns(spec: TrainingSpec, data: pd.DataFrame) -> list[str]:
    columns = [str(c) for c in data.columns]
    if spec.target not in columns:
        raise UsageError(f"target column {spec.target!r} is not in the data (columns: {columns})")
    if spec.features is None:
        return [c for c in columns if c != spec.target]
    missing = [c for c in spec.features if c not in columns]
    if missing:
        raise UsageError(f"feature columns {missing} are not in the data (columns: {columns})")
    return list(spec.features)


def _metrics(task: str, y_true: Any, y_pred: Any) -> dict[str, float | None]:
    """Scores on the evaluation rows; None where undefined (e.g. r2 of a single row)."""
    import warnings

    from sklearn import metrics
    from sklearn.exceptions import UndefinedMetricWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        if task == "classification":
            scores = {
                "accuracy": metrics.accuracy_score(y_true, y_pred),
                "f1_macro": metrics.f1_score(y_true, y_pred, average="macro", zero_division=0),
            }
        else:
            scores = {
                "r2": metrics.r2_score(y_true, y_pred),
                "mae": metrics.mean_absolute_error(y_true, y_pred),
                "rmse": metrics.root_mean_squared_error(y_true, y_pred),
            }
    return {k: float(v) if math.isfinite(v) else None for k, v in scores.items()}


def train(spec: TrainingSpec, data: pd.DataFrame) -> TrainResult:
    """Split `data` (seeded), fit the spec's estimator on the training rows, score the rest."""
    import sklearn
    from pandas.api.types import is_numeric_dtype
    from sklearn.model_selection import train_test_split

    features = _columns(spec, data)
    estimator = build_estimator(spec)
    if data[spec.target].isna().any():
        raise UsageError(f"target column {spec.target!r} has missing values")
    x = data[features]
    y = data[spec.target]
    if spec.task == "regression" and not is_numeric_dtype(y):
        raise UsageError(f"regression target {spec.target!r} is not numeric")
    if spec.split > 0:
        try:
            x_train, x_test, y_train, y_test = train_test_split(
                x,
                y,
                test_size=spec.split,
                random_state=spec.seed,
                stratify=y if spec.stratified() else None,
            )
        except ValueError as e:
            raise UsageError(f"cannot split {len(data)} rows (split {spec.split}): {e}") from e
    else:
        x_train, x_test, y_train, y_test = x, x, y, y
    try:
        estimator.fit(x_train, y_train)
        predicted = estimator.predict(x_test)
    except (ValueError, TypeError) as e:
        raise UsageError(f"training {spec.estimator} failed: {e}") from e
    return TrainResult(
        model=estimator,
        task=spec.task,
        target=spec.target,
        features=features,
        estimator=spec.estimator,
        params=_jsonable(estimator.get_params(deep=False)),
        metrics=_metrics(spec.task, y_test, predicted),
        evaluated_on="test" if spec.split > 0 else "train",
        rows_train=len(x_train),
        rows_test=len(x_test) if spec.split > 0 else 0,
        seed=spec.seed,
        sklearn_version=sklearn.__version__,
    )


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in sorted(params.items()):
        if value is None or isinstance(value, str | int | float | bool):
            out[key] = value
        else:
            out[key] = repr(value)
    return out


def train_folder(spec: TrainingSpec, data_dir: Path, out_dir: Path) -> TrainResult:
    """Train on every dataset in `data_dir`; write model.skops and metrics.json into `out_dir`.

    Both files appear together and only when complete: the model is first written to a temp
    name and loaded back under the allow-list; on any failure neither file is left behind.
    """
    data = load_datasets(data_dir)
    result = train(spec, data)
    model_path, metrics_path = out_dir / MODEL_FILE, out_dir / METRICS_FILE
    with staged(model_path, metrics_path) as (model_tmp, metrics_tmp):
        write_model(result.model, model_tmp)
        result = replace(
            result, extra={"model_file": MODEL_FILE, "model_sha256": file_sha256(model_tmp)}
        )
        try:
            metrics_tmp.write_text(json.dumps(result.summary(), indent=2) + "\n", encoding="utf-8")
        except OSError as e:
            raise StorageError(f"cannot write {metrics_path}: {e.strerror or e}") from e
    return result
