"""Training specs: loading, strictness, and the sklearn-only estimator rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seml.errors import PolicyError, UsageError
from seml.ml import TrainingSpec, build_estimator, load_spec, parse_spec, resolve_estimator

BASE = {
    "task": "classification",
    "target": "species",
    "estimator": "sklearn.ensemble.RandomForestClassifier",
    "params": {"n_estimators": 10},
}


def test_yaml_and_json_load_the_same_spec(tmp_path: Path) -> None:
    yaml_path = tmp_path / "spec.yaml"
    yaml_path.write_text(
        "task: classification\ntarget: species\n"
        "estimator: sklearn.ensemble.RandomForestClassifier\nparams: {n_estimators: 10}\n"
    )
    json_path = tmp_path / "spec.json"
    json_path.write_text(json.dumps(BASE))
    assert load_spec(yaml_path) == load_spec(json_path)
    spec = load_spec(yaml_path)
    assert (spec.split, spec.seed, spec.features, spec.stratified()) == (0.2, 0, None, True)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"estmator": "x"}, "estmator"),
        ({"task": "clustering"}, "task"),
        ({"split": 1.0}, "split"),
        ({"seed": -1}, "seed"),
        ({"features": []}, "features"),
        ({"features": ["a", "a"]}, "more than once"),
        ({"features": ["species"]}, "also listed as a feature"),
        ({"task": "regression", "stratify": True}, "stratify"),
        ({"params": {"f": {"x": object()}}}, "params"),
    ],
)
def test_bad_specs_are_usage_errors_naming_the_problem(
    change: dict[str, object], fragment: str
) -> None:
    with pytest.raises(UsageError, match=fragment):
        parse_spec({**BASE, **change}, source="s.yaml")


@pytest.mark.parametrize(
    "path", ["os.system", "numpy.linalg.inv", "sklearnx.Foo", "sklearn", "sklearn..x", "__import__"]
)
def test_spec_refuses_estimators_outside_sklearn(path: str) -> None:
    with pytest.raises(UsageError, match="not a scikit-learn class path"):
        parse_spec({**BASE, "estimator": path})


def test_resolve_refuses_outside_sklearn_even_if_the_spec_was_not_validated() -> None:
    spec = TrainingSpec.model_construct(
        task="classification", target="species", estimator="os.system", params={}, seed=0
    )
    with pytest.raises(PolicyError, match="outside the sklearn namespace"):
        build_estimator(spec)


@pytest.mark.parametrize(
    ("path", "error", "fragment"),
    [
        ("sklearn.preprocessing.StandardScaler", PolicyError, "not a scikit-learn classifier"),
        ("sklearn.pipeline.Pipeline", PolicyError, "not a scikit-learn classifier"),
        ("sklearn.base.BaseEstimator", PolicyError, "not a scikit-learn classifier"),
        ("sklearn.ensemble.NoSuchForest", UsageError, "does not exist"),
        ("sklearn.nosuchmodule.Thing", UsageError, "does not exist"),
        ("sklearn.ensemble.RandomForestRegressor", UsageError, "is a regression estimator"),
    ],
)
def test_resolve_accepts_only_classifiers_and_regressors(
    path: str, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error, match=fragment):
        resolve_estimator(path, "classification")


def test_seed_and_single_job_are_defaults_that_params_override() -> None:
    est = build_estimator(parse_spec({**BASE, "seed": 7}))
    assert (est.random_state, est.n_jobs, est.n_estimators) == (7, 1, 10)
    est = build_estimator(parse_spec({**BASE, "params": {"random_state": 3, "n_jobs": 2}}))
    assert (est.random_state, est.n_jobs) == (3, 2)


def test_unknown_estimator_params_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="bad params"):
        build_estimator(parse_spec({**BASE, "params": {"n_trees": 3}}))


def test_unreadable_spec_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read"):
        load_spec(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("task: [unclosed\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_spec(bad)
    bad.write_text("- a list\n")
    with pytest.raises(UsageError, match="mapping"):
        load_spec(bad)
