"""The ML provider (training) and the model runner (inference).

Training is declared by a `TrainingSpec` (task, target, features, a scikit-learn estimator by
class path, split, seed): `train_folder` reads every CSV/Parquet file of a folder, trains and
writes ``model.skops`` and ``metrics.json``. Model files are skops archives, loaded only when
every type they name is on SEML's allow-list (`load_model`); never pickle.

A user's own training script, run as a service's command, can use the same pieces::

    from pathlib import Path
    from seml.ml import load_datasets, save_model

    data = load_datasets(Path("/volumes/data"))
    model = MyPreferredSklearnEstimator().fit(data[features], data[target])
    save_model(model, Path("/volumes/model/model.skops"))

`save_model` writes atomically and only if the file loads back under the allow-list and passes
the structural checks, so whatever a script saves, `seml ml predict` can run.
"""

from seml.ml._archive import ArchiveLimits, parse_size
from seml.ml._datasets import (
    IRIS_FEATURES,
    enlarge,
    holdout,
    iris_frame,
    split_parties,
    synthetic,
    target_column,
)
from seml.ml._layout import DATASETS, WrittenDataset, make_dataset, write_dataset
from seml.ml._modelfile import (
    MODEL_LIMITS,
    TRUSTED_INTERNALS,
    ModelType,
    inspect_model,
    is_trusted_type,
    load_model,
    model_limits,
    model_types,
    save_model,
)
from seml.ml._predict import model_features, predict, predict_frame
from seml.ml._spec import Task, TrainingSpec, load_spec, parse_spec, resolve_estimator
from seml.ml._tables import TableLimits, dataset_files, load_datasets, read_table
from seml.ml._train import (
    METRICS_FILE,
    MODEL_FILE,
    TrainResult,
    build_estimator,
    train,
    train_folder,
)

__all__ = [
    "DATASETS",
    "IRIS_FEATURES",
    "METRICS_FILE",
    "MODEL_FILE",
    "MODEL_LIMITS",
    "TRUSTED_INTERNALS",
    "ArchiveLimits",
    "ModelType",
    "TableLimits",
    "Task",
    "TrainResult",
    "TrainingSpec",
    "WrittenDataset",
    "build_estimator",
    "dataset_files",
    "enlarge",
    "holdout",
    "inspect_model",
    "iris_frame",
    "is_trusted_type",
    "load_datasets",
    "load_model",
    "load_spec",
    "make_dataset",
    "model_features",
    "model_limits",
    "model_types",
    "parse_size",
    "parse_spec",
    "predict",
    "predict_frame",
    "read_table",
    "resolve_estimator",
    "save_model",
    "split_parties",
    "synthetic",
    "target_column",
    "train",
    "train_folder",
    "write_dataset",
]
