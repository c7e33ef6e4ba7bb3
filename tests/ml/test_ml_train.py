"""Training through SEML equals scikit-learn trained directly (the paper's accuracy claim)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import train_test_split

from seml.cli import main
from seml.errors import PolicyError, UsageError
from seml.ml import (
    holdout,
    iris_frame,
    load_spec,
    parse_spec,
    split_parties,
    train,
    train_folder,
)


def _write_shards(folder: Path, task: str, *, parquet: bool = False) -> pd.DataFrame:
    """Write two party shards (one as Parquet if asked); return the holdout rows."""
    rest, held = holdout(iris_frame(task), 15, seed=4)  # type: ignore[arg-type]
    a, b = split_parties(rest, 2, seed=4)
    folder.mkdir(parents=True, exist_ok=True)
    a.to_csv(folder / "party-a.csv", index=False)
    if parquet:
        b.to_parquet(folder / "party-b.parquet")
    else:
        b.to_csv(folder / "party-b.csv", index=False)
    return held


def _native_combined(folder: Path) -> pd.DataFrame:
    """What a person would do without SEML: read both parties' files and stack them."""
    a = pd.read_csv(folder / "party-a.csv")
    b_path = folder / "party-b.csv"
    b = pd.read_csv(b_path) if b_path.exists() else pd.read_parquet(folder / "party-b.parquet")
    return pd.concat([a, b], ignore_index=True)


@pytest.mark.parametrize(
    ("task", "estimator", "params", "native", "parquet"),
    [
        (
            "classification",
            "sklearn.ensemble.RandomForestClassifier",
            {"n_estimators": 50},
            RandomForestClassifier(n_estimators=50, random_state=11, n_jobs=1),
            False,
        ),
        (
            "regression",
            "sklearn.ensemble.RandomForestRegressor",
            {"n_estimators": 30},
            RandomForestRegressor(n_estimators=30, random_state=11, n_jobs=1),
            True,
        ),
        (
            "regression",
            "sklearn.linear_model.LinearRegression",
            {},
            LinearRegression(),
            False,
        ),
    ],
)
def test_cli_trained_model_predicts_exactly_like_native_sklearn(
    tmp_path: Path,
    task: str,
    estimator: str,
    params: dict[str, int],
    native: object,
    parquet: bool,
) -> None:
    data, out = tmp_path / "volume" / "data", tmp_path / "volume" / "model"
    held = _write_shards(data, task, parquet=parquet)
    held_path = tmp_path / "holdout.csv"
    held.to_csv(held_path, index=False)
    spec_path = tmp_path / "spec.json"
    target = "species" if task == "classification" else "petal_width"
    spec = {"task": task, "target": target, "estimator": estimator, "params": params, "seed": 11}
    spec_path.write_text(json.dumps(spec))

    assert (
        main(["ml", "train", "--spec", str(spec_path), "--data", str(data), "--out", str(out)]) == 0
    )
    predictions = tmp_path / "predictions.csv"
    model = out / "model.skops"
    argv = ["ml", "predict", "--model", str(model), "--input", str(held_path)]
    assert main([*argv, "--out", str(predictions)]) == 0

    combined = _native_combined(data)
    x, y = combined.drop(columns=target), combined[target]
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, random_state=11, stratify=y if task == "classification" else None
    )
    native.fit(x_train, y_train)  # type: ignore[attr-defined]
    expected = native.predict(held.drop(columns=target))  # type: ignore[attr-defined]
    got = pd.read_csv(predictions)
    assert list(got["row"]) == list(range(15))
    np.testing.assert_array_equal(got["prediction"].to_numpy(), expected)

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["rows"] == {"train": len(x_train), "test": len(x_test)}
    assert metrics["features"] == list(x.columns)
    key = "accuracy" if task == "classification" else "r2"
    native_test = native.predict(x_test)  # type: ignore[attr-defined]
    if task == "classification":
        assert metrics["metrics"][key] == float(np.mean(native_test == y_test.to_numpy()))
    else:
        from sklearn.metrics import r2_score

        assert metrics["metrics"][key] == float(r2_score(y_test, native_test))
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "model.skops"]


def test_split_zero_trains_on_every_row_and_reports_training_metrics() -> None:
    data = iris_frame("classification")
    spec = parse_spec(
        {
            "task": "classification",
            "target": "species",
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "split": 0,
            "features": ["petal_length", "petal_width"],
        }
    )
    result = train(spec, data)
    assert (result.rows_train, result.rows_test, result.evaluated_on) == (150, 0, "train")
    assert result.features == ["petal_length", "petal_width"]
    assert list(result.model.feature_names_in_) == ["petal_length", "petal_width"]
    accuracy = result.metrics["accuracy"]
    assert accuracy is not None and 0.9 < accuracy <= 1.0
    assert set(result.summary()) >= {"metrics", "rows", "sklearn_version", "params"}


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"target": "colour"}, "target column 'colour' is not in the data"),
        ({"features": ["sepal_length", "petal_size"]}, r"feature columns \['petal_size'\]"),
        (
            {"task": "regression", "target": "species", "estimator": "sklearn.svm.SVR"},
            "not numeric",
        ),
        ({"target": "sepal_length", "stratify": False}, "training .* failed"),  # str feature
    ],
)
def test_training_input_errors(tmp_path: Path, change: dict[str, object], fragment: str) -> None:
    spec = parse_spec(
        {"task": "classification", "target": "species", "estimator": "sklearn.svm.SVC", **change}
    )
    data = tmp_path / "data"
    _write_shards(data, "classification")
    out = tmp_path / "out"
    with pytest.raises(UsageError, match=fragment):
        train_folder(spec, data, out)
    assert not out.exists() or list(out.iterdir()) == []


def test_no_partial_outputs_when_writing_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _write_shards(data, "classification")
    spec = parse_spec(
        {"task": "classification", "target": "species", "estimator": "sklearn.svm.SVC"}
    )

    def boom(path: Path) -> str:
        assert path.exists()  # the model was written under a temp name
        raise OSError("disk full")

    monkeypatch.setattr("seml.ml._train.file_sha256", boom)
    with pytest.raises(OSError, match="disk full"):
        train_folder(spec, data, out)
    assert list(out.iterdir()) == []


def test_cli_train_errors_exit_non_zero_without_outputs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    pd.DataFrame({"a": [1, 2], "y": [0, 1]}).to_csv(data / "one.csv", index=False)
    pd.DataFrame({"a": [1, 2], "z": [0, 1]}).to_csv(data / "two.csv", index=False)
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: classification\ntarget: y\nestimator: os.system\n")
    assert main(["ml", "train", "--spec", str(spec), "--data", str(data), "--out", str(out)]) == 2
    assert "not a scikit-learn class path" in capsys.readouterr().err
    spec.write_text("task: classification\ntarget: y\nestimator: sklearn.svm.SVC\n")
    assert main(["ml", "train", "--spec", str(spec), "--data", str(data), "--out", str(out)]) == 2
    assert "two.csv has different columns" in capsys.readouterr().err
    assert not out.exists()


def test_enlarged_iris_through_the_cli_matches_native_sklearn(tmp_path: Path) -> None:
    """The paper's 100x Iris, split between two parties, as `seml ml` commands would run it."""
    made, out, pred = tmp_path / "made", tmp_path / "model", tmp_path / "pred.csv"
    argv = ["ml", "dataset", "iris-large", "--out", str(made), "--holdout", "50", "--seed", "9"]
    assert main(argv) == 0
    data = made / "parties"
    spec = load_spec(made / "spec.yaml")
    assert spec.params == {"n_estimators": 100}
    lighter = spec.model_copy(update={"params": {"n_estimators": 10}})
    (tmp_path / "spec.json").write_text(lighter.model_dump_json())
    argv = ["ml", "train", "--spec", str(tmp_path / "spec.json"), "--data", str(data)]
    assert main([*argv, "--out", str(out)]) == 0
    argv = ["ml", "predict", "--model", str(out / "model.skops"), "--input"]
    assert main([*argv, str(made / "holdout.csv"), "--out", str(pred)]) == 0

    combined = pd.concat(
        [pd.read_csv(data / "party-1.csv"), pd.read_csv(data / "party-2.csv")], ignore_index=True
    )
    assert len(combined) == 14_950
    x, y = combined.drop(columns="species"), combined["species"]
    x_train, _, y_train, _ = train_test_split(x, y, test_size=0.2, random_state=9, stratify=y)
    native = RandomForestClassifier(n_estimators=10, random_state=9, n_jobs=1).fit(x_train, y_train)
    held = pd.read_csv(made / "holdout.csv").drop(columns="species")
    np.testing.assert_array_equal(pd.read_csv(pred)["prediction"], native.predict(held))


def test_undefined_metrics_are_null_not_nan(tmp_path: Path) -> None:
    data = tmp_path / "d"
    data.mkdir()
    pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0.0, 1.0, 2.0, 3.0]}).to_csv(
        data / "t.csv", index=False
    )
    spec = parse_spec(
        {
            "task": "regression",
            "target": "y",
            "estimator": "sklearn.linear_model.LinearRegression",
            "split": 0.25,
        }
    )
    result = train_folder(spec, data, tmp_path / "out")
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())["metrics"]
    assert metrics["r2"] is None and result.metrics["r2"] is None
    assert metrics["mae"] == pytest.approx(0.0, abs=1e-9)


def test_an_estimator_seml_cannot_check_is_refused_before_training(tmp_path: Path) -> None:
    data, out = tmp_path / "data", tmp_path / "out"
    _write_shards(data, "classification")
    spec = parse_spec(
        {
            "task": "classification",
            "target": "species",
            "estimator": "sklearn.calibration.CalibratedClassifierCV",
        }
    )
    with pytest.raises(
        PolicyError, match=r"CalibratedClassifierCV.* not among the estimators whose fitted state"
    ):
        train_folder(spec, data, out)
    assert not out.exists() or list(out.iterdir()) == []
