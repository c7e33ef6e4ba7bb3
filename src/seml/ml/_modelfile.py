"""Safe model files: skops archives loaded against an explicit allow-list of types.

A model file is never unpickled. Before anything is constructed, every type named in the
archive's schema (and every type skops itself does not trust by default) is checked against
SEML's allow-list:

- the scikit-learn classifiers and regressors SEML can train (the same rule the trainer uses
  for a spec's estimator: a class in the ``sklearn`` package deriving from ClassifierMixin or
  RegressorMixin);
- the internals those estimators hold (tree structures, neighbour indices, loss objects, label
  encoders) and the plain containers, numpy arrays, scalars and random states they are made of.

Anything else — a custom class, a function, an object from another module — is refused with a
`PolicyError` naming the types. An empty allow-list never means "allow all".
"""

from __future__ import annotations

import functools
import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seml._fs import staged
from seml.errors import PolicyError, UsageError
from seml.ml._spec import estimator_kind, import_sklearn_class

__all__ = [
    "TRUSTED_INTERNALS",
    "ModelType",
    "file_sha256",
    "is_trusted_type",
    "load_model",
    "model_types",
    "save_model",
    "write_model",
]

_LOSSES = (
    "HalfSquaredError",
    "AbsoluteError",
    "PinballLoss",
    "HuberLoss",
    "HalfPoissonLoss",
    "HalfGammaLoss",
    "HalfTweedieLoss",
    "HalfTweedieLossIdentity",
    "HalfBinomialLoss",
    "HalfMultinomialLoss",
    "ExponentialLoss",
)

TRUSTED_INTERNALS: frozenset[str] = frozenset(
    {
        # plain data
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "numpy.ndarray",
        "numpy.dtype",
        "numpy.float64",
        "numpy.float32",
        "numpy.int64",
        "numpy.int32",
        "numpy.uint64",
        "numpy.uint32",
        "numpy.uint8",
        "numpy.bool",
        "numpy.bool_",
        "numpy.str_",
        "numpy.random._generator.Generator",
        "numpy.random.mtrand.RandomState",
        "numpy.random._pcg64.PCG64",
        "numpy.random._mt19937.MT19937",
        # what fitted scikit-learn estimators hold
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.ManhattanDistance64",
        "sklearn.metrics._dist_metrics.MinkowskiDistance64",
        "sklearn.metrics._dist_metrics.ChebyshevDistance64",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.preprocessing._label.LabelBinarizer",
        "sklearn._loss.link.IdentityLink",
        "sklearn._loss.link.LogLink",
        "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.HalfLogitLink",
        "sklearn._loss.link.MultinomialLogit",
        "sklearn._loss.link.Interval",
        *(f"sklearn._loss.loss.{name}" for name in _LOSSES),
        *(f"sklearn._loss._loss.Cy{name}" for name in _LOSSES),
    }
)


@dataclass(frozen=True)
class ModelType:
    """A type named in a model file, and whether SEML's allow-list trusts it."""

    name: str
    trusted: bool


@functools.lru_cache(maxsize=512)
def is_trusted_type(name: str) -> bool:
    """Whether `name` (``module.Class``) is on the allow-list.

    Estimator classes are recognised by importing their ``sklearn`` module (never any other
    package) and checking that the class is a classifier or regressor SEML could train.
    """
    if name in TRUSTED_INTERNALS:
        return True
    cls = import_sklearn_class(name)
    return cls is not None and estimator_kind(cls) is not None


def _schema_types(node: Any, found: set[str]) -> None:
    if isinstance(node, dict):
        module, cls = node.get("__module__"), node.get("__class__")
        if isinstance(module, str) and isinstance(cls, str):
            found.add(f"{module}.{cls}")
        for value in node.values():
            _schema_types(value, found)
    elif isinstance(node, list):
        for value in node:
            _schema_types(value, found)


def _refuse_non_skops(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise UsageError(f"cannot read model file {path}: {e.strerror or e}") from e
    if head[:1] == b"\x80":
        raise PolicyError(
            f"{path} is a Python pickle, not a skops model file; "
            "SEML never loads pickle files (they can run arbitrary code)"
        )
    if head != b"PK\x03\x04":
        raise UsageError(f"{path} is not a skops model file (not a zip archive)")


def _scan(path: Path) -> tuple[list[ModelType], list[str]]:
    """(every type the file names, the subset skops itself flags as untrusted)."""
    import skops.io

    _refuse_non_skops(path)
    found: set[str] = set()
    try:
        with zipfile.ZipFile(path) as archive:
            schema = json.loads(archive.read("schema.json"))
        _schema_types(schema, found)
        flagged = list(skops.io.get_untrusted_types(file=path))
    except Exception as e:  # zipfile, json, skops raise many types for a malformed archive
        raise UsageError(f"{path} is not a valid skops model file: {e}") from e
    found.update(flagged)
    if not found:
        raise UsageError(f"{path} is not a valid skops model file: its schema names no types")
    return [ModelType(name, is_trusted_type(name)) for name in sorted(found)], flagged


def model_types(path: Path) -> list[ModelType]:
    """Every type a skops model file would construct, each marked trusted or not (sorted).

    Nothing is constructed or imported from the file; sklearn modules are imported by name to
    recognise estimator classes.
    """
    return _scan(path)[0]


def load_model(path: Path) -> Any:
    """Load a model file, refusing any type outside the allow-list before constructing anything.

    Raises `PolicyError` naming the untrusted types (or a disguised pickle), `UsageError` for a
    file that is not a readable skops archive.
    """
    types, flagged = _scan(path)
    untrusted = [t.name for t in types if not t.trusted]
    if untrusted:
        raise PolicyError(f"{path} contains types SEML does not trust: {', '.join(untrusted)}")
    return _construct(path, flagged)


def _construct(path: Path, flagged: list[str]) -> Any:
    """Build the model once every type in the file has passed the allow-list."""
    import skops.io

    try:
        # Only what skops flags beyond its defaults is passed, and all of it passed our check.
        model = skops.io.load(path, trusted=flagged)
    except Exception as e:  # a malformed archive fails in many ways inside skops/numpy
        raise UsageError(f"cannot load model file {path}: {e}") from e
    if estimator_kind(type(model)) is None:
        raise PolicyError(
            f"{path} holds a {type(model).__module__}.{type(model).__qualname__}, "
            "not a scikit-learn classifier or regressor"
        )
    return model


def write_model(model: Any, path: Path) -> None:
    """Dump `model` with skops to `path` (a temp name) and check it loads under the allow-list."""
    import skops.io

    if estimator_kind(type(model)) is None:
        raise PolicyError(
            f"cannot save a {type(model).__module__}.{type(model).__qualname__}: "
            "only scikit-learn classifiers and regressors are saved as SEML models"
        )
    if not hasattr(model, "feature_names_in_"):
        raise UsageError(
            "the model has no feature names: fit it on a pandas DataFrame with named columns "
            "(predict checks the input columns against them)"
        )
    try:
        skops.io.dump(model, path)
    except Exception as e:  # skops raises TypeError and others for objects it cannot persist
        raise UsageError(f"cannot save the model with skops: {e}") from e
    types, flagged = _scan(path)
    untrusted = [t.name for t in types if not t.trusted]
    if untrusted:
        raise PolicyError(
            f"the {type(model).__name__} model holds types outside SEML's allow-list, so no "
            f"runner would load it: {', '.join(untrusted)}"
        )
    _construct(path, flagged)


def save_model(model: Any, path: Path) -> str:
    """Save a fitted estimator as a skops model file, atomically; returns its SHA-256 (hex).

    For users' own training scripts: the file is only put in place once it loads back under
    the same allow-list `load_model` and `seml ml predict` use.
    """
    with staged(path) as (tmp,):
        write_model(model, tmp)
        digest = file_sha256(tmp)
    return digest


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
