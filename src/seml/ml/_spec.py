"""The training spec: what to train is declared, not coded.

A spec names a task, a target column, the feature columns, a scikit-learn estimator by class
path (only the ``sklearn.`` namespace is accepted) with its parameters, the test fraction and the
seed. It loads from YAML or JSON and forbids unknown keys, so a typo is an error, not a default.
"""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from seml.errors import PolicyError, UsageError

__all__ = [
    "Task",
    "TrainingSpec",
    "estimator_kind",
    "import_sklearn_class",
    "is_validated_estimator",
    "load_spec",
    "parse_spec",
    "resolve_estimator",
]

Task = Literal["classification", "regression"]

# A dotted path of identifiers inside the sklearn package (sklearn.ensemble.RandomForestClassifier).
_SKLEARN_PATH = re.compile(r"sklearn(\.[A-Za-z_][A-Za-z0-9_]*)+")


class TrainingSpec(BaseModel):
    """What to train: task, columns, estimator and how to split and seed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: Task = Field(description="classification or regression")
    target: str = Field(min_length=1, description="the column to predict")
    features: list[str] | None = Field(
        default=None, description="feature columns; default: every column but the target"
    )
    estimator: str = Field(
        description="scikit-learn class path, e.g. sklearn.ensemble.RandomForestClassifier"
    )
    params: dict[str, JsonValue] = Field(
        default_factory=dict, description="keyword arguments for the estimator"
    )
    split: float = Field(
        default=0.2, ge=0.0, lt=1.0, description="fraction of rows held out for metrics; 0: none"
    )
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="seed for split and estimator")
    stratify: bool | None = Field(
        default=None,
        description="stratify the split by the target; default: yes for classification",
    )

    @field_validator("estimator")
    @classmethod
    def _sklearn_only(cls, value: str) -> str:
        if not _SKLEARN_PATH.fullmatch(value):
            raise ValueError(
                f"estimator {value!r} is not a scikit-learn class path "
                "(only sklearn.* estimators may be trained from a spec)"
            )
        return value

    @field_validator("features")
    @classmethod
    def _distinct(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            if not value:
                raise ValueError("features must not be empty (omit it to use every column)")
            if len(set(value)) != len(value):
                raise ValueError("features lists a column more than once")
        return value

    def stratified(self) -> bool:
        """Whether the split is stratified by the target (the default for classification)."""
        return self.task == "classification" if self.stratify is None else self.stratify


def parse_spec(document: Any, *, source: str = "spec") -> TrainingSpec:
    """Validate a parsed spec document; errors become `UsageError` naming `source`."""
    if not isinstance(document, dict):
        raise UsageError(f"{source}: a training spec must be a mapping of keys to values")
    try:
        spec = TrainingSpec.model_validate(document)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'spec'}: {err['msg']}" for err in e.errors()
        )
        raise UsageError(f"{source}: invalid training spec: {problems}") from e
    if spec.task == "regression" and spec.stratify:
        raise UsageError(f"{source}: stratify applies to classification only")
    if spec.features is not None and spec.target in spec.features:
        raise UsageError(f"{source}: the target {spec.target!r} is also listed as a feature")
    return spec


def load_spec(path: Path) -> TrainingSpec:
    """Read a training spec from a YAML or JSON file (JSON is YAML, so one parser reads both)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(f"cannot read training spec {path}: {e}") from e
    try:
        document = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as e:
        raise UsageError(f"training spec {path} is not valid YAML/JSON: {e}") from e
    return parse_spec(document, source=str(path))


def resolve_estimator(path: str, task: Task) -> type[Any]:
    """Import the estimator class named by `path`, refusing anything SEML does not train.

    Only classes in the ``sklearn`` package that are scikit-learn classifiers (for
    classification) or regressors (for regression), and whose fitted state SEML checks
    structurally before predicting (`is_validated_estimator`), are accepted. The model loader
    trusts exactly the same classes, so whatever SEML trains it can load again.
    """
    if not _SKLEARN_PATH.fullmatch(path):
        raise PolicyError(f"estimator {path!r} is outside the sklearn namespace; refused")
    cls = import_sklearn_class(path)
    if cls is None:
        raise UsageError(f"estimator {path!r} does not exist in this scikit-learn")
    kind = estimator_kind(cls)
    if kind is None:
        raise PolicyError(f"{path!r} is not a scikit-learn classifier or regressor; refused")
    if kind != task:
        raise UsageError(f"estimator {path!r} is a {kind} estimator, but the task is {task}")
    if not is_validated_estimator(f"{cls.__module__}.{cls.__qualname__}"):
        raise PolicyError(
            f"{path!r} is not among the estimators whose fitted state SEML checks before running "
            "it, so it cannot be trained or loaded (the README lists the supported estimators)"
        )
    return cls


def is_validated_estimator(name: str) -> bool:
    """Whether `name` (``module.Class`` where the class is defined) is an estimator whose
    fitted state `seml.ml` checks structurally, so it may be trained and loaded."""
    if not name.startswith("sklearn."):
        return False  # never import anything outside scikit-learn to answer
    from seml.ml._validate import validated_estimators

    return name in validated_estimators()


def import_sklearn_class(path: str) -> type[Any] | None:
    """The class at a dotted ``sklearn.`` path, or None. Imports only sklearn's own modules."""
    if not _SKLEARN_PATH.fullmatch(path):
        return None
    module_name, _, name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    obj = getattr(module, name, None)
    return obj if isinstance(obj, type) else None


def estimator_kind(cls: type[Any]) -> Task | None:
    """'classification' or 'regression' for a scikit-learn predictor class, else None."""
    from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

    if not issubclass(cls, BaseEstimator) or not cls.__module__.startswith("sklearn."):
        return None
    if issubclass(cls, ClassifierMixin):
        return "classification"
    if issubclass(cls, RegressorMixin):
        return "regression"
    return None
