"""Structural checks of each estimator family SEML loads, in-process: a tampered model is an
`IntegrityError` naming the attribute and the problem; an untouched one loads and predicts."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn import (
    discriminant_analysis,
    ensemble,
    linear_model,
    naive_bayes,
    neighbors,
    neural_network,
    svm,
    tree,
)
from sklearn.base import is_classifier
from sklearn.utils import all_estimators

from _skops_tamper import SkopsArchive, add_attribute, npy_with_header, set_json_value
from seml.errors import IntegrityError, PolicyError
from seml.ml import iris_frame, load_model, save_model
from seml.ml._validate import validated_estimators

IRIS = iris_frame("classification")
X, Y = IRIS.drop(columns="species"), IRIS["species"]
XR, YR = X.drop(columns="petal_width"), X["petal_width"]

Tamper = Callable[[SkopsArchive], None]


def _top(a: SkopsArchive) -> dict[str, Any]:
    return a.state(a.schema)


def _edit(attribute: str, change: Callable[[np.ndarray[Any, Any]], Any]) -> Tamper:
    """Replace the top-level array `attribute` with what `change` makes of it."""

    def tamper(a: SkopsArchive) -> None:
        node = _top(a)[attribute]
        a.put(node, np.ascontiguousarray(change(a.array(node).copy())))

    return tamper


def _in(class_name: str, attribute: str, change: Callable[[np.ndarray[Any, Any]], Any]) -> Tamper:
    """The same for `attribute` of the first object of class `class_name`."""

    def tamper(a: SkopsArchive) -> None:
        node = a.state(a.objects(class_name)[0])[attribute]
        a.put(node, np.ascontiguousarray(change(a.array(node).copy())))

    return tamper


def _set(values: np.ndarray[Any, Any], index: Any, value: Any) -> np.ndarray[Any, Any]:
    values[index] = value
    return values


def _json(attribute: str, value: Any) -> Tamper:
    return lambda a: set_json_value(_top(a)[attribute], value)


def _add(key: str, value: Any) -> Tamper:
    return lambda a: add_attribute(a.schema, key, value)


def _swap_class(class_name: str, new_name: str) -> Tamper:
    def tamper(a: SkopsArchive) -> None:
        a.objects(class_name)[0]["__class__"] = new_name

    return tamper


def _swap_first_tree(a: SkopsArchive) -> None:
    _top(a)["estimators_"]["content"][0]["__class__"] = "ExtraTreeClassifier"


def _drop_tree(a: SkopsArchive) -> None:
    _top(a)["estimators_"]["content"].pop()


def _duplicate_name(a: SkopsArchive) -> None:
    names = _top(a)["feature_names_in_"]["content"]
    names[1] = dict(names[0])


def _tree_features(a: SkopsArchive) -> None:
    args = a.objects("Tree")[0]["__reduce__"]["args"]["content"]
    set_json_value(args[0], 5)


def _knn_split(a: SkopsArchive) -> None:
    node_data = a.objects("KDTree")[0]["content"]["content"][2]
    a.edit(node_data, lambda n: n["idx_end"].__setitem__(1, n["idx_end"][1] + 1))


def _hgb_threshold(a: SkopsArchive) -> None:
    nodes = a.state(a.objects("TreePredictor")[0])["nodes"]
    a.edit(nodes, lambda n: n["num_threshold"].__setitem__(0, np.nan))


def _bagging_columns(a: SkopsArchive) -> None:
    columns = _top(a)["estimators_features_"]["content"][0]
    a.edit(columns, lambda c: c.__setitem__(0, 10))


def _mlp_layer(a: SkopsArchive) -> None:
    second = _top(a)["coefs_"]["content"][1]
    a.put(second, np.ascontiguousarray(a.array(second)[:-1]))


CASES: list[tuple[str, Callable[[], Any], bool, Tamper, str]] = [
    (
        "class-attribute-override",
        lambda: svm.SVC(),
        True,
        _add("_impl", "epsilon_svr"),
        r"SVC: its state overrides the class attribute '_impl'",
    ),
    (
        "invalid-parameter",
        lambda: ensemble.RandomForestClassifier(n_estimators=3),
        True,
        _json("n_estimators", -1),
        r"invalid parameters: The 'n_estimators' parameter",
    ),
    (
        "duplicate-feature-names",
        lambda: tree.DecisionTreeClassifier(),
        True,
        _duplicate_name,
        r"feature_names_in_ are not 4 distinct names",
    ),
    (
        "tree-feature-count",
        lambda: tree.DecisionTreeClassifier(),
        True,
        _tree_features,
        r"tree_: is built for 5 features, the model has 4",
    ),
    (
        "forest-tree-count",
        lambda: ensemble.RandomForestClassifier(n_estimators=3),
        True,
        _drop_tree,
        r"estimators_ is not a list of 3 trees",
    ),
    (
        "forest-tree-type",
        lambda: ensemble.RandomForestClassifier(n_estimators=3),
        True,
        _swap_first_tree,
        r"estimators_\[0\]: is a ExtraTreeClassifier, expected DecisionTreeClassifier",
    ),
    (
        "boosting-loss",
        lambda: ensemble.GradientBoostingClassifier(n_estimators=2),
        True,
        _swap_class("HalfMultinomialLoss", "HalfBinomialLoss"),
        r"_loss: is a HalfBinomialLoss, expected HalfMultinomialLoss",
    ),
    (
        "boosting-init",
        lambda: ensemble.GradientBoostingClassifier(n_estimators=2),
        True,
        _in("DummyClassifier", "class_prior_", lambda p: p[:2]),
        r"init_\.class_prior_: has shape \(2,\), expected \(3,\)",
    ),
    (
        "hist-baseline",
        lambda: ensemble.HistGradientBoostingClassifier(max_iter=2),
        True,
        _edit("_baseline_prediction", lambda b: b[:, :2]),
        r"_baseline_prediction: has shape \(1, 2\), expected \(1, 3\)",
    ),
    (
        "hist-in-fit",
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=2),
        False,
        _add("_in_fit", True),
        r"is marked as still being fitted",
    ),
    (
        "hist-threshold",
        lambda: ensemble.HistGradientBoostingRegressor(max_iter=2),
        False,
        _hgb_threshold,
        r"_predictors\[0\]\[0\]: node 0 has threshold nan",
    ),
    (
        "bagging-columns",
        lambda: ensemble.BaggingClassifier(n_estimators=2, max_features=2),
        True,
        _bagging_columns,
        r"estimators_\[0\]: uses feature columns outside the model's 4",
    ),
    (
        "adaboost-weights",
        lambda: ensemble.AdaBoostRegressor(n_estimators=3),
        False,
        _edit("estimator_weights_", lambda w: w[:1]),
        r"estimator_weights_: has shape \(1,\), expected \(3,\)",
    ),
    (
        "linear-intercept",
        lambda: linear_model.LinearRegression(),
        False,
        _edit("intercept_", lambda i: np.array([i, i])),
        r"intercept_: has shape \(2,\), expected \(1,\)",
    ),
    (
        "mlp-layers",
        lambda: neural_network.MLPClassifier(max_iter=20),
        True,
        _mlp_layer,
        r"coefs_\[1\]: has shape \(99, 3\), expected \(100, 'any'\)",
    ),
    (
        "gaussian-nb-variance",
        lambda: naive_bayes.GaussianNB(),
        True,
        _edit("var_", lambda v: _set(v, (0, 0), 0.0)),
        r"var_ has a variance that is not positive",
    ),
    (
        "svm-vectors",
        lambda: svm.SVC(),
        True,
        _edit("support_vectors_", lambda v: v[:, :3]),
        r"support_vectors_: has shape \(\d+, 3\), expected \('any', 4\)",
    ),
    (
        "svm-calibration",
        lambda: svm.SVR(),
        False,
        _edit("_probA", lambda p: np.zeros(2)),
        r"_probA and _probB have \[0, 2\] values, expected 1",
    ),
    (
        "knn-labels",
        lambda: neighbors.KNeighborsClassifier(),
        True,
        _edit("_y", lambda y: _set(y, 0, 7)),
        r"_y holds class indices outside its 3 classes",
    ),
    (
        "knn-node-ranges",
        lambda: neighbors.KNeighborsClassifier(algorithm="kd_tree"),
        True,
        _knn_split,
        r"_tree: the children of node 0 do not split its points",
    ),
    (
        "stored-array-header",
        lambda: tree.DecisionTreeClassifier(),
        True,
        lambda a: a.members.__setitem__(
            a.state(a.objects("Tree")[0])["values"]["file"],
            npy_with_header(
                np.zeros(3), {"descr": "<f8", "fortran_order": False, "shape": (10**9,)}
            ),
        ),
        r"stored array '\d+\.npy' declares shape \(1000000000,\) of float64 \(8000000000 bytes\) "
        r"but holds 24 bytes",
    ),
    (
        "stored-array-objects",
        lambda: tree.DecisionTreeClassifier(),
        True,
        lambda a: a.members.__setitem__(
            a.state(a.objects("Tree")[0])["values"]["file"],
            npy_with_header(np.zeros(3), {"descr": "|O", "fortran_order": False, "shape": (3,)}),
        ),
        r"stored array '\d+\.npy' holds Python objects",
    ),
]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize(
    ("factory", "classifier", "tamper", "problem"),
    [pytest.param(f, c, t, p, id=name) for name, f, c, t, p in CASES],
)
def test_a_tampered_model_is_refused_naming_the_problem(
    tmp_path: Path, factory: Callable[[], Any], classifier: bool, tamper: Tamper, problem: str
) -> None:
    model = factory().fit(*((X, Y) if classifier else (XR, YR)))
    good = tmp_path / "model.skops"
    save_model(model, good)
    archive = SkopsArchive(good)
    tamper(archive)
    bad = archive.save(tmp_path / "tampered.skops")
    with pytest.raises(IntegrityError) as refused:
        load_model(bad)
    assert str(refused.value).startswith(f"{bad}: ")
    assert re.search(problem, str(refused.value)), str(refused.value)


def _fit(cls: type[Any]) -> tuple[Any, pd.DataFrame]:
    model = cls()
    x, y = (X, Y) if is_classifier(model) else (XR, YR)
    return model.fit(x, y), x


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize("name", sorted(validated_estimators()))
def test_every_allowed_estimator_passes_its_checks_and_predicts_the_same(
    tmp_path: Path, name: str
) -> None:
    classes = {f"{c.__module__}.{c.__qualname__}": c for _, c in all_estimators()}
    model, x = _fit(classes[name])
    path = tmp_path / "model.skops"
    save_model(model, path)
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))


def test_the_allow_list_names_only_checked_estimators() -> None:
    names = validated_estimators()
    assert "sklearn.ensemble._forest.RandomForestClassifier" in names
    assert len(names) >= 50
    assert not any("Calibrated" in n or "GaussianProcess" in n or "Pipeline" in n for n in names)


def test_a_classifier_seml_cannot_check_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "model.skops"
    skops.io.dump(discriminant_analysis.QuadraticDiscriminantAnalysis().fit(X, Y), path)
    with pytest.raises(PolicyError, match=r"does not trust: .*QuadraticDiscriminantAnalysis"):
        load_model(path)


def test_save_model_refuses_a_model_the_runner_would_refuse(tmp_path: Path) -> None:
    two_targets = pd.DataFrame({"a": Y, "b": Y})
    with pytest.raises(
        PolicyError,
        match=r"would not pass the runner's checks: .*predicts 2 "
        r"outputs; SEML models predict one target",
    ):
        save_model(tree.DecisionTreeClassifier().fit(X, two_targets), tmp_path / "m.skops")
    assert list(tmp_path.iterdir()) == []


XI = (X * 10).round().astype(int)  # integer features stay integers in some models
XN = X.copy()
XN.iloc[::7, 0] = np.nan  # missing values: trees split them off with an infinite threshold

VARIANTS: list[tuple[str, Any, pd.DataFrame, Any]] = [
    ("knn-int-features", neighbors.KNeighborsClassifier(algorithm="kd_tree"), XI, Y),
    (
        "knn-brute-int",
        neighbors.KNeighborsRegressor(algorithm="brute"),
        XI.iloc[:, :3],
        XR.iloc[:, 0],
    ),
    ("tree-missing-values", tree.DecisionTreeClassifier(), XN, Y),
    ("hist-missing-values", ensemble.HistGradientBoostingClassifier(max_iter=3), XN, Y),
    ("forest-balanced", ensemble.RandomForestClassifier(3, class_weight="balanced"), X, Y),
    ("boosting-zero-init", ensemble.GradientBoostingClassifier(n_estimators=2, init="zero"), X, Y),
    ("binary-logistic", linear_model.LogisticRegression(), X, Y == "setosa"),
    ("ridge-no-intercept", linear_model.Ridge(fit_intercept=False), XR, YR),
    ("bagged-neighbours", ensemble.BaggingRegressor(neighbors.KNeighborsRegressor()), XR, YR),
    ("svc-probability", svm.SVC(probability=True), X, Y),
    ("float32-features", tree.DecisionTreeClassifier(), X.astype(np.float32), Y),
]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::FutureWarning")
@pytest.mark.parametrize(
    ("model", "x", "y"), [pytest.param(m, x, y, id=name) for name, m, x, y in VARIANTS]
)
def test_legitimate_variants_pass_the_checks(
    tmp_path: Path, model: Any, x: pd.DataFrame, y: Any
) -> None:
    model.fit(x, y)
    path = tmp_path / "model.skops"
    save_model(model, path)
    np.testing.assert_array_equal(load_model(path).predict(x), model.predict(x))
