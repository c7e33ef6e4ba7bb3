"""Mutate every array stored in small model files of each family, then load and predict.

Run as a script (by test_ml_fuzz.py, in a subprocess, so a crash of compiled code shows as a
failed test): prints one JSON line per mutation, flushed, with the outcome:
``refused`` (a SemlError, with its class and message), ``predicted``, or ``failed`` (any
other exception: the user would see a traceback).
"""

from __future__ import annotations

import io
import json
import sys
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import ensemble, linear_model, naive_bayes, neighbors, neural_network, svm, tree

from seml.errors import SemlError
from seml.ml import iris_frame, load_model, predict_frame, save_model

IRIS = iris_frame("classification")
X, Y = IRIS.drop(columns="species"), IRIS["species"]
XR, YR = X.drop(columns="petal_width"), X["petal_width"]

MODELS: list[tuple[str, Callable[[], Any], bool]] = [
    ("tree", lambda: tree.DecisionTreeClassifier(max_depth=3), True),
    ("forest", lambda: ensemble.RandomForestRegressor(n_estimators=2, max_depth=3), False),
    ("boosting", lambda: ensemble.GradientBoostingClassifier(n_estimators=1, max_depth=2), True),
    ("hist", lambda: ensemble.HistGradientBoostingClassifier(max_iter=1, max_depth=3), True),
    ("kd", lambda: neighbors.KNeighborsClassifier(algorithm="kd_tree", leaf_size=20), True),
    ("ball", lambda: neighbors.KNeighborsRegressor(algorithm="ball_tree", leaf_size=20), False),
    ("svc", lambda: svm.SVC(), True),
    ("svr", lambda: svm.NuSVR(), False),
    ("mlp", lambda: neural_network.MLPClassifier((5,), solver="lbfgs", max_iter=30), True),
    ("logistic", lambda: linear_model.LogisticRegression(max_iter=300), True),
    ("nb", lambda: naive_bayes.GaussianNB(), True),
    ("bagging", lambda: ensemble.BaggingClassifier(n_estimators=2, max_features=3), True),
    ("adaboost", lambda: ensemble.AdaBoostRegressor(n_estimators=2), False),
]


def _mutations(values: np.ndarray[Any, Any]) -> Iterator[tuple[str, np.ndarray[Any, Any]]]:
    """Attacker-style edits of one stored array: huge, negative and NaN entries, one row or
    one column fewer, and the same per field of a structured array."""
    if values.ndim >= 1 and values.shape[0] > 1:
        yield "fewer rows", values[:-1]
    if values.ndim >= 2 and values.shape[-1] > 1:
        yield "fewer columns", np.ascontiguousarray(values[..., :-1])
    fields = values.dtype.names or (None,)
    for field in fields:
        target = values[field] if field is not None else values
        if target.size == 0 or target.dtype.kind not in "iuf":
            continue
        label = f"{field}: " if field is not None else ""
        if target.dtype.kind in "iu":
            info = np.iinfo(target.dtype)
            picks: list[Any] = sorted({min(10**9, int(info.max)), max(-3, int(info.min))})
        else:
            picks = [np.nan, np.inf]
        for value in picks:
            changed = values.copy()
            part = changed[field] if field is not None else changed
            flat = part.reshape(-1)
            flat[min(1, flat.size - 1)] = value
            if field is not None:
                changed[field] = part
            yield f"{label}entry 1 = {value}", changed


def _rewrite(members: dict[str, bytes], name: str, values: np.ndarray[Any, Any], out: Path) -> None:
    buffer = io.BytesIO()
    np.save(buffer, values, allow_pickle=False)
    with zipfile.ZipFile(out, "w") as archive:
        for member, content in members.items():
            archive.writestr(member, buffer.getvalue() if member == name else content)


def main(folder: Path) -> None:
    warnings.simplefilter("ignore")
    for label, factory, classifier in MODELS:
        x, y = (X, Y) if classifier else (XR, YR)
        good = folder / f"{label}.skops"
        save_model(factory().fit(x, y), good)
        with zipfile.ZipFile(good) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        for name in sorted(n for n in members if n.endswith(".npy")):
            values = np.load(io.BytesIO(members[name]), allow_pickle=False)
            for change, mutated in _mutations(values):
                case = {"model": label, "member": name, "change": change}
                print(json.dumps({**case, "outcome": "started"}), flush=True)
                bad = folder / "mutated.skops"
                _rewrite(members, name, mutated, bad)
                try:
                    model = load_model(bad)
                    predict_frame(model, x, proba=hasattr(model, "predict_proba"))
                    outcome = {"outcome": "predicted"}
                except SemlError as e:
                    outcome = {"outcome": "refused", "error": type(e).__name__, "why": str(e)}
                except Exception as e:
                    outcome = {"outcome": "failed", "error": type(e).__name__, "why": str(e)}
                print(json.dumps({**case, **outcome}), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
