"""The model runner: load a model file safely, check the inputs, write predictions."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from seml._fs import staged
from seml.errors import StorageError, UsageError
from seml.ml._archive import ArchiveLimits
from seml.ml._modelfile import MODEL_LIMITS, load_model
from seml.ml._tables import load_datasets, read_table

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["model_features", "predict", "predict_frame"]


def model_features(model: Any) -> list[str]:
    """The feature columns a fitted model expects, in order."""
    names = getattr(model, "feature_names_in_", None)
    if names is None:
        raise UsageError("the model records no feature names; SEML models are fit on named columns")
    return [str(n) for n in names]


def predict_frame(
    model: Any, inputs: pd.DataFrame, *, proba: bool = False, id_column: str | None = None
) -> pd.DataFrame:
    """Predictions for `inputs`: ``row`` (0-based input position), the id column if asked,
    ``prediction``, and with `proba` one ``proba_<class>`` column per class (classifiers)."""
    import pandas as pd

    features = model_features(model)
    columns = [str(c) for c in inputs.columns]
    missing = [f for f in features if f not in columns]
    if missing:
        raise UsageError(f"the input lacks the model's feature columns {missing} (has {columns})")
    if id_column is not None and id_column not in columns:
        raise UsageError(f"id column {id_column!r} is not in the input (has {columns})")
    x = inputs[features]
    out = pd.DataFrame({"row": range(len(inputs))})
    if id_column is not None:
        out[id_column] = inputs[id_column].to_numpy()
    try:
        out["prediction"] = model.predict(x)
        if proba:
            if not hasattr(model, "predict_proba"):
                raise UsageError("--proba: this model gives no class probabilities")
            probabilities = model.predict_proba(x)
            for i, label in enumerate(model.classes_):
                out[f"proba_{label}"] = probabilities[:, i]
    except (ValueError, TypeError) as e:
        raise UsageError(f"cannot predict on these inputs: {e}") from e
    return out


def predict(
    model_path: Path,
    inputs: Path | pd.DataFrame,
    out: Path,
    *,
    proba: bool = False,
    id_column: str | None = None,
    limits: ArchiveLimits = MODEL_LIMITS,
) -> pd.DataFrame:
    """Load `model_path` within `limits`, under the allow-list and its structural checks,
    predict for `inputs` (a DataFrame, a CSV or Parquet file, or a folder of them) and write
    the predictions CSV to `out` atomically."""
    model = load_model(model_path, limits=limits)
    if isinstance(inputs, Path):
        frame = load_datasets(inputs) if inputs.is_dir() else read_table(inputs)
    else:
        frame = inputs
    result = predict_frame(model, frame, proba=proba, id_column=id_column)
    with staged(out) as (tmp,):
        try:
            result.to_csv(tmp, index=False)
        except OSError as e:
            raise StorageError(f"cannot write {out}: {e.strerror or e}") from e
    return result
