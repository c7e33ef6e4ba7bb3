"""The model runner: safe load, input checks, atomic predictions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression

from seml.errors import PolicyError, UsageError
from seml.ml import iris_frame, predict, save_model

IRIS = iris_frame("classification")
X, Y = IRIS.drop(columns="species"), IRIS["species"]


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model") / "model.skops"
    save_model(RandomForestClassifier(n_estimators=5, random_state=0).fit(X, Y), path)
    return path


def test_predictions_with_ids_and_probabilities(classifier: Path, tmp_path: Path) -> None:
    inputs = IRIS.iloc[[0, 60, 120]].assign(sample=["s1", "s2", "s3"])[::-1]  # extra columns ok
    inputs = inputs[["sample", "petal_width", "sepal_length", "petal_length", "sepal_width"]]
    out = tmp_path / "pred.csv"
    result = predict(classifier, inputs, out, proba=True, id_column="sample")
    written = pd.read_csv(out)
    pd.testing.assert_frame_equal(written, result, check_dtype=False)
    assert list(written.columns) == [
        "row",
        "sample",
        "prediction",
        "proba_setosa",
        "proba_versicolor",
        "proba_virginica",
    ]
    assert list(written["sample"]) == ["s3", "s2", "s1"]
    assert list(written["prediction"]) == ["virginica", "versicolor", "setosa"]
    np.testing.assert_allclose(written.filter(like="proba_").sum(axis=1), 1.0)


def test_parquet_inputs_and_folders(classifier: Path, tmp_path: Path) -> None:
    IRIS.head(4).to_parquet(tmp_path / "in.parquet")
    a = predict(classifier, tmp_path / "in.parquet", tmp_path / "a.csv")
    folder = tmp_path / "batch"
    folder.mkdir()
    IRIS.head(4).to_csv(folder / "rows.csv", index=False)
    b = predict(classifier, folder, tmp_path / "b.csv")
    pd.testing.assert_frame_equal(a, b)
    assert list(a["prediction"]) == ["setosa"] * 4


def test_missing_feature_column_is_refused_and_nothing_written(
    classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pred.csv"
    with pytest.raises(UsageError, match=r"lacks the model's feature columns \['petal_width'\]"):
        predict(classifier, X.drop(columns="petal_width"), out)
    with pytest.raises(UsageError, match="id column 'nope'"):
        predict(classifier, X, out, id_column="nope")
    with pytest.raises(UsageError, match="cannot predict"):
        predict(classifier, X.assign(petal_width="wide"), out)
    assert list(tmp_path.iterdir()) == []


def test_regressors_have_no_probabilities(tmp_path: Path) -> None:
    model = tmp_path / "reg.skops"
    save_model(LinearRegression().fit(X.drop(columns="petal_width"), X["petal_width"]), model)
    with pytest.raises(UsageError, match="no class probabilities"):
        predict(model, X, tmp_path / "p.csv", proba=True)
    assert not (tmp_path / "p.csv").exists()


def test_an_untrusted_model_never_predicts(tmp_path: Path) -> None:
    import pickle

    model = tmp_path / "model.skops"
    model.write_bytes(pickle.dumps({"anything": 1}))
    with pytest.raises(PolicyError, match="pickle"):
        predict(model, X, tmp_path / "p.csv")
    assert not (tmp_path / "p.csv").exists()
