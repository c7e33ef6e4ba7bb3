"""Safe model files: skops archives read within size limits, loaded against an explicit
allow-list of types, and checked structurally before anything predicts with them.

A model file is never unpickled. Loading takes four steps, each refusing with one line that
names the file:

1. The archive is read by SEML's bounded ZIP reader (`_archive`): member count, each member's
   and the total inflated size are limited (`MODEL_LIMITS`), checked from the declared sizes
   and again while inflating; unsafe member names, overlapping members and the like are
   refused. Every stored numpy array must declare exactly the bytes it holds. skops then reads
   a clean copy built from these bytes, never the file itself.
2. Every type named in the archive's schema (and every type skops itself does not trust by
   default) is checked against SEML's allow-list:
   - the scikit-learn classifiers and regressors SEML can check structurally
     (`validated_estimators`: trees, forests, boosting, bagging, linear models, naive Bayes,
     neural networks, support vector machines, nearest neighbours);
   - the internals those estimators hold (tree structures, neighbour indices, loss objects,
     label encoders) and the plain containers, numpy arrays, scalars and random states they
     are made of.
   Anything else — a custom class, a function, an object from another module, an estimator
   SEML cannot check — is refused with a `PolicyError` naming the types. An empty allow-list
   never means "allow all".
3. skops constructs the model from the allowed types.
4. `validate_model` checks every array the model's predictions read (`_validate`); a model
   whose internals are inconsistent is an `IntegrityError`, before any prediction.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import sys
import threading
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import Any

from seml._fs import staged
from seml.errors import IntegrityError, PolicyError, UsageError
from seml.ml._archive import ArchiveLimits, format_size, read_zip
from seml.ml._spec import estimator_kind, is_validated_estimator

__all__ = [
    "MODEL_LIMITS",
    "TRUSTED_INTERNALS",
    "ModelType",
    "file_sha256",
    "inspect_model",
    "is_trusted_type",
    "load_model",
    "model_limits",
    "model_types",
    "save_model",
    "write_model",
]

SCHEMA = "schema.json"

MODEL_LIMITS = ArchiveLimits(
    max_total_bytes=1 << 30,
    max_member_bytes=1 << 30,
    max_members=65_535,
    per_member={SCHEMA: 128 << 20},
)
"""Default limits for a model file: 1 GiB inflated in total and per member, 128 MiB of schema
(about 6,000 trees), 65,535 members."""

# Directory records, local headers and names: what a ZIP file holds beyond its members' bytes.
_ZIP_OVERHEAD_PER_MEMBER = 2 * (46 + 255)

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


def model_limits(max_bytes: int | None = None) -> ArchiveLimits:
    """`MODEL_LIMITS`, with the total and per-member inflated size set to `max_bytes` if given
    (the schema keeps its own limit unless `max_bytes` is smaller)."""
    if max_bytes is None:
        return MODEL_LIMITS
    schema = min(MODEL_LIMITS.per_member[SCHEMA], max_bytes)
    return replace(
        MODEL_LIMITS,
        max_total_bytes=max_bytes,
        max_member_bytes=max_bytes,
        per_member={SCHEMA: schema},
    )


@functools.lru_cache(maxsize=512)
def is_trusted_type(name: str) -> bool:
    """Whether `name` (``module.Class``) is on the allow-list: a trusted internal, or an
    estimator class SEML checks structurally before running it (`validated_estimators`)."""
    return name in TRUSTED_INTERNALS or is_validated_estimator(name)


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


def _refuse_non_skops(head: bytes, path: Path) -> None:
    if head[:1] == b"\x80":
        raise PolicyError(
            f"{path} is a Python pickle, not a skops model file; "
            "SEML never loads pickle files (they can run arbitrary code)"
        )
    if head[:4] != b"PK\x03\x04":
        raise UsageError(f"{path} is not a skops model file (not a zip archive)")


_skops_lock = threading.Lock()


def _skops_io() -> ModuleType:
    """`skops.io`, imported without its default trust in every scikit-learn estimator.

    At import, skops lists every estimator scikit-learn has (`all_estimators()`), which imports
    every scikit-learn module: about half of a model runner's start (seconds of CPU per
    process). SEML never relies on that list: every type a model file names is checked against
    SEML's own allow-list and passed to skops explicitly (`trusted=`). So skops is imported
    with an empty estimator list, which only makes its defaults stricter. If something imported
    skops earlier with its defaults, that module is used: the checks here do not depend on it.
    """
    with _skops_lock:
        if "skops.io" not in sys.modules:
            import sklearn.utils

            every_estimator = sklearn.utils.all_estimators
            sklearn.utils.all_estimators = _no_estimators
            try:
                import skops.io  # noqa: F401  (registered in sys.modules)
            finally:
                sklearn.utils.all_estimators = every_estimator
    return sys.modules["skops.io"]


def _no_estimators(*args: Any, **kwargs: Any) -> list[tuple[str, type]]:
    return []


@dataclass(frozen=True)
class _Archive:
    """A model file's members, read within the limits, as a clean archive skops may read."""

    types: list[ModelType]
    flagged: list[str]  # types skops may construct beyond its defaults
    clean: bytes  # a stored-only ZIP rebuilt from the checked members


def _read(path: Path, limits: ArchiveLimits) -> _Archive:
    skops_io = _skops_io()

    data = _read_bounded(path, limits)
    _refuse_non_skops(data[:4], path)
    members = read_zip(data, source=str(path), limits=limits)
    del data
    if SCHEMA not in members:
        raise UsageError(f"{path} is not a valid skops model file: it has no {SCHEMA}")
    try:
        schema = json.loads(members[SCHEMA])
    except (ValueError, RecursionError) as e:
        raise UsageError(f"{path} is not a valid skops model file: bad {SCHEMA}: {e}") from e
    if not isinstance(schema, dict):
        raise UsageError(f"{path} is not a valid skops model file: {SCHEMA} is not an object")
    for name, content in members.items():
        if name.endswith(".npy"):
            _check_stored_array(content, name, path)
    _unshare(schema)
    _check_seed_sequences(schema, members, path)
    members[SCHEMA] = json.dumps(schema).encode()
    clean = _rebuild(members)
    del members
    found: set[str] = set()
    _schema_types(schema, found)
    if not found:
        raise UsageError(f"{path} is not a valid skops model file: its schema names no types")
    if all(is_trusted_type(name) for name in found):
        # Every object skops builds is named in the schema, and all of those are allowed:
        # they are what skops may construct beyond its defaults (it refuses anything else).
        return _Archive([ModelType(n, True) for n in sorted(found)], sorted(found), clean)
    try:  # skops names what lies behind function and method nodes, for a precise refusal
        flagged = list(skops_io.get_untrusted_types(data=clean))
    except Exception as e:  # skops raises many types for a malformed schema
        raise UsageError(f"{path} is not a valid skops model file: {e}") from e
    found.update(flagged)
    types = [ModelType(name, is_trusted_type(name)) for name in sorted(found)]
    return _Archive(types, flagged, clean)


def _unshare(schema: dict[str, Any]) -> None:
    """Give every object in the schema an id of its own.

    skops builds an object once per id, from the first node it meets with that id, and reuses
    it for later nodes with the same id. A file could thus show one value where SEML checks it
    and have skops build another from elsewhere. Without shared ids, what SEML checks is what
    skops builds (shared arrays are built once per use; nothing depends on their identity).
    """
    fresh = 0
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if "__id__" in node:
                fresh += 1
                node["__id__"] = fresh
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


# numpy's SeedSequence allocates and mixes a pool of this many words at construction.
_MAX_SEED_POOL = 64
_MAX_SEED_WORDS = 1024


def _check_seed_sequences(schema: dict[str, Any], members: dict[str, bytes], path: Path) -> None:
    """The seed sequence of a stored random generator is built before any check can run;
    its sizes must be what numpy makes, not what an attacker asks (a pool of a billion words
    is gigabytes of memory)."""
    stack: list[Any] = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("__loader__") == "RandomGeneratorNode":
                _check_seed_sequence(node, members, path)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _check_seed_sequence(node: dict[str, Any], members: dict[str, bytes], path: Path) -> None:
    problem = f"{path}: a stored random generator's seed sequence is malformed"
    try:
        fields = node["content"]["seed_seq"]["content"]
        pool = json.loads(fields["pool_size"]["content"])
        spawned = json.loads(fields["n_children_spawned"]["content"])
        spawn_key = fields["spawn_key"].get("content", [])
        entropy = fields["entropy"]
    except (KeyError, TypeError, ValueError) as e:
        raise IntegrityError(problem) from e
    words = entropy.get("content") if isinstance(entropy, dict) else None
    stored = members.get(entropy.get("file", "")) if isinstance(entropy, dict) else None
    if stored is not None:  # an array of seed words (its header was checked already)
        shape, _dtype = _npy_header(_npy_header_bytes(stored))
        words = [0] * min(math.prod(shape), _MAX_SEED_WORDS + 1)
    sizes_ok = (
        isinstance(pool, int)
        and 4 <= pool <= _MAX_SEED_POOL
        and isinstance(spawned, int)
        and 0 <= spawned < 2**32
        and isinstance(spawn_key, list)
        and len(spawn_key) <= _MAX_SEED_WORDS
        and (not isinstance(words, list) or len(words) <= _MAX_SEED_WORDS)
    )
    if not sizes_ok:
        raise IntegrityError(
            f"{path}: a stored random generator asks for a seed pool of {pool} words (numpy "
            f"makes 4; at most {_MAX_SEED_POOL} are accepted) or oversized seeds; refused"
        )


def _read_bounded(path: Path, limits: ArchiveLimits) -> bytes:
    cap = limits.max_total_bytes + limits.max_members * _ZIP_OVERHEAD_PER_MEMBER
    try:
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as e:
        raise UsageError(f"cannot read model file {path}: {e.strerror or e}") from e
    if len(data) > cap:
        raise PolicyError(
            f"{path} is larger than {format_size(cap)}, over the model size limit "
            f"of {format_size(limits.max_total_bytes)}"
        )
    return data


def _check_stored_array(content: bytes, name: str, path: Path) -> None:
    """A stored ``.npy`` member declares exactly the bytes it holds and no Python objects
    (numpy would otherwise allocate what the header claims before finding the data short)."""
    try:
        header = _npy_header_bytes(content)
        shape, dtype = _npy_header(header)
    except (ValueError, TypeError, SyntaxError, OverflowError) as e:
        raise IntegrityError(f"{path}: stored array {name!r} has a bad header: {e}") from e
    if dtype.hasobject:
        raise IntegrityError(f"{path}: stored array {name!r} holds Python objects; refused")
    count = 1
    for extent in shape:
        count *= extent
    declared = count * dtype.itemsize
    held = len(content) - len(header)
    if declared != held:
        raise IntegrityError(
            f"{path}: stored array {name!r} declares shape {shape} of {dtype} "
            f"({declared} bytes) but holds {held} bytes"
        )


def _npy_header_bytes(content: bytes) -> bytes:
    # magic (6 bytes), version (2), header length (2 bytes in version 1, 4 in 2), header.
    if content[:6] != b"\x93NUMPY" or len(content) < 12:
        raise ValueError("not a .npy array")
    if content[6:8] == b"\x01\x00":
        return content[: 10 + int.from_bytes(content[8:10], "little")]
    if content[6:8] == b"\x02\x00":
        return content[: 12 + int.from_bytes(content[8:12], "little")]
    raise ValueError(f"unsupported .npy version {tuple(content[6:8])}")


@functools.lru_cache(maxsize=4096)
def _npy_header(header: bytes) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) of a .npy header, parsed by numpy (forests repeat their headers)."""
    import numpy as np

    stream = io.BytesIO(header)
    version = np.lib.format.read_magic(stream)
    read = (
        np.lib.format.read_array_header_1_0
        if version == (1, 0)
        else np.lib.format.read_array_header_2_0
    )
    shape, _fortran, dtype = read(stream)
    if stream.tell() != len(header):
        raise ValueError("the header's length field disagrees with its text")
    return tuple(int(n) for n in shape), dtype


def _rebuild(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in list(members):
            archive.writestr(name, members.pop(name))
    return buffer.getvalue()


def model_types(path: Path, *, limits: ArchiveLimits = MODEL_LIMITS) -> list[ModelType]:
    """Every type a skops model file would construct, each marked trusted or not (sorted).

    Nothing is constructed or imported from the file; sklearn modules are imported by name to
    recognise estimator classes. The archive is read within `limits`.
    """
    return _read(path, limits).types


def inspect_model(path: Path, *, limits: ArchiveLimits = MODEL_LIMITS) -> list[ModelType]:
    """The types of a model file (like `model_types`), and, when all are trusted, the same
    construction and structural validation `load_model` performs; raises as `load_model`
    would except for untrusted types, which are returned for the caller to show."""
    archive = _read(path, limits)
    if all(t.trusted for t in archive.types):
        _construct(archive, path)
    return archive.types


def load_model(path: Path, *, limits: ArchiveLimits = MODEL_LIMITS) -> Any:
    """Load a model file: read within `limits`, refuse any type outside the allow-list before
    constructing anything, then check the model's internal arrays.

    Raises `PolicyError` naming the untrusted types (or a disguised pickle, or a file over the
    limits), `IntegrityError` for an archive or a model whose contents are inconsistent,
    `UsageError` for a file that is not a readable skops archive.
    """
    archive = _read(path, limits)
    untrusted = [t.name for t in archive.types if not t.trusted]
    if untrusted:
        raise PolicyError(f"{path} contains types SEML does not trust: {', '.join(untrusted)}")
    return _construct(archive, path)


def _construct(archive: _Archive, path: Path) -> Any:
    """Build the model once every type in the file has passed the allow-list, and check it."""
    from seml.ml._validate import validate_model

    skops_io = _skops_io()

    try:
        # Only what skops flags beyond its defaults is passed, and all of it passed our check.
        model = skops_io.loads(archive.clean, trusted=archive.flagged)
    except Exception as e:  # a tampered archive fails in many ways inside skops/numpy/sklearn
        reason = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
        raise IntegrityError(
            f"{path}: cannot build the model from its stored state: {reason}"
        ) from e
    if estimator_kind(type(model)) is None:
        raise PolicyError(
            f"{path} holds a {type(model).__module__}.{type(model).__qualname__}, "
            "not a scikit-learn classifier or regressor"
        )
    validate_model(model, source=str(path))
    return model


def write_model(model: Any, path: Path) -> None:
    """Dump `model` with skops to `path` (a temp name) and check it loads under the allow-list."""
    skops_io = _skops_io()

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
        skops_io.dump(model, path)
    except Exception as e:  # skops raises TypeError and others for objects it cannot persist
        raise UsageError(f"cannot save the model with skops: {e}") from e
    archive = _read(path, MODEL_LIMITS)
    untrusted = [t.name for t in archive.types if not t.trusted]
    if untrusted:
        raise PolicyError(
            f"the {type(model).__name__} model holds types outside SEML's allow-list, so no "
            f"runner would load it: {', '.join(untrusted)}"
        )
    try:
        _construct(archive, path)
    except IntegrityError as e:  # a model SEML just saved: unsupported, not tampered with
        raise PolicyError(
            f"the {type(model).__name__} model would not pass the runner's checks: "
            f"{str(e).removeprefix(f'{path}: ')}"
        ) from e


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
