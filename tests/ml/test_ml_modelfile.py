"""Safe model files: skops archives loaded only against SEML's allow-list."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import skops.io
from sklearn import ensemble, linear_model, naive_bayes, neighbors, svm, tree
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from seml.errors import PolicyError, UsageError
from seml.ml import iris_frame, load_model, model_types, save_model

IRIS = iris_frame("classification")
X, Y = IRIS.drop(columns="species"), IRIS["species"]
XR, YR = X.drop(columns="petal_width"), X["petal_width"]


class WrappedForest(ensemble.RandomForestClassifier):  # type: ignore[misc]
    """A model wrapped in a class from outside scikit-learn."""


class Holder:
    def __init__(self, model: Any) -> None:
        self.model = model


def _forest() -> ensemble.RandomForestClassifier:
    return ensemble.RandomForestClassifier(n_estimators=3, random_state=0).fit(X, Y)


@pytest.mark.parametrize(
    ("estimator", "regression"),
    [
        (ensemble.RandomForestClassifier(n_estimators=3, random_state=0), False),
        (ensemble.ExtraTreesRegressor(n_estimators=3, random_state=0), True),
        (ensemble.GradientBoostingClassifier(n_estimators=3, random_state=0), False),
        (ensemble.HistGradientBoostingClassifier(max_iter=3, random_state=0), False),
        (ensemble.HistGradientBoostingRegressor(max_iter=3, random_state=0), True),
        (linear_model.LogisticRegression(max_iter=500), False),
        (linear_model.LinearRegression(), True),
        (neighbors.KNeighborsClassifier(), False),
        (naive_bayes.GaussianNB(), False),
        (svm.SVR(), True),
        (tree.DecisionTreeRegressor(random_state=0), True),
    ],
    ids=lambda v: type(v).__name__ if not isinstance(v, bool) else "",
)
def test_models_seml_trains_round_trip(tmp_path: Path, estimator: Any, regression: bool) -> None:
    x, y = (XR, YR) if regression else (X, Y)
    estimator.fit(x, y)
    path = tmp_path / "model.skops"
    digest = save_model(estimator, path)
    assert len(digest) == 64
    assert all(t.trusted for t in model_types(path))
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x), estimator.predict(x))
    assert [p.name for p in tmp_path.iterdir()] == ["model.skops"]


def test_a_model_wrapped_in_a_custom_class_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump(WrappedForest(n_estimators=2, random_state=0).fit(X, Y), path)
    with pytest.raises(PolicyError, match=r"does not trust: .*WrappedForest"):
        load_model(path)
    skops.io.dump(Holder(_forest()), path)
    with pytest.raises(PolicyError, match=r"does not trust: .*Holder"):
        load_model(path)


def test_an_object_from_an_unexpected_module_is_refused(tmp_path: Path) -> None:
    model = _forest()
    model.hook = os.system
    path = tmp_path / "model.skops"
    skops.io.dump(model, path)
    with pytest.raises(PolicyError, match=r"does not trust: .*(posix|os)\.system"):
        load_model(path)
    assert {t.name: t.trusted for t in model_types(path)}[f"{os.name}.system"] is False


def test_types_skops_trusts_by_default_are_still_checked(tmp_path: Path) -> None:
    # skops trusts Pipeline and StandardScaler by default; SEML's allow-list does not.
    path = tmp_path / "model.skops"
    skops.io.dump(make_pipeline(StandardScaler(), _forest()).fit(X, Y), path)
    with pytest.raises(PolicyError, match=r"Pipeline.*StandardScaler|StandardScaler.*Pipeline"):
        load_model(path)


def test_a_file_of_trusted_types_that_is_not_a_model_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump({"weights": np.arange(3)}, path)
    with pytest.raises(PolicyError, match=r"holds a builtins\.dict"):
        load_model(path)


def test_a_pickle_named_model_skops_is_refused_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(pickle.dumps(_forest()))
    with pytest.raises(PolicyError, match="is a Python pickle"):
        load_model(path)
    with pytest.raises(PolicyError, match="is a Python pickle"):
        model_types(path)


def test_malformed_archives_are_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    path.write_bytes(b"hello")
    with pytest.raises(UsageError, match="not a skops model file"):
        load_model(path)
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("other.txt", "x")
    with pytest.raises(UsageError, match="not a valid skops model file"):
        load_model(path)
    with pytest.raises(UsageError, match="cannot read model file"):
        load_model(tmp_path / "missing.skops")


def test_save_model_refuses_what_it_could_not_load_and_leaves_nothing(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    with pytest.raises(PolicyError, match="only scikit-learn classifiers and regressors"):
        save_model(StandardScaler().fit(X), path)
    with pytest.raises(PolicyError, match="WrappedForest"):
        save_model(WrappedForest(n_estimators=2).fit(X, Y), path)
    with pytest.raises(UsageError, match="no feature names"):
        save_model(ensemble.RandomForestClassifier(n_estimators=2).fit(X.to_numpy(), Y), path)
    assert list(tmp_path.iterdir()) == []


def test_a_model_runner_start_skips_skops_list_of_every_estimator(tmp_path: Path) -> None:
    """skops imports every scikit-learn module to list its default-trusted estimators; SEML
    passes its own checked list instead, so a fresh process that loads a forest and predicts
    imports no unrelated estimator module, and still refuses a type outside the allow-list."""
    import subprocess
    import sys

    good, bad = tmp_path / "good.skops", tmp_path / "bad.skops"
    save_model(_forest(), good)
    skops.io.dump(Holder(_forest()), bad)
    expected = list(_forest().predict(X.head(5)))
    code = f"""
import sys
from seml.errors import PolicyError
from seml.ml import iris_frame, load_model
model = load_model({str(good)!r})
print(list(model.predict(iris_frame("classification").drop(columns="species").head(5))))
try:
    load_model({str(bad)!r})
except PolicyError as e:
    print("refused:", e)
print(sorted(m for m in ("sklearn.gaussian_process", "sklearn.mixture", "sklearn.semi_supervised")
             if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    predicted, refusal, unrelated = out.stdout.strip().splitlines()
    assert predicted == str(expected)
    assert refusal.startswith("refused:") and "does not trust" in refusal
    assert "test_ml_modelfile.Holder" in refusal
    assert unrelated == "[]"
