"""`seml ml ...` through the real entry point."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import skops.io
import yaml
from sklearn.ensemble import RandomForestClassifier

from seml.cli import main
from seml.ml import iris_frame, load_spec


def test_dataset_writes_disjoint_shards_holdout_and_a_spec(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "iris"
    argv = ["ml", "dataset", "iris", "--out", str(out), "--names", "alice,bob", "--holdout", "10"]
    assert main([*argv, "--seed", "3"]) == 0
    printed = capsys.readouterr().out
    assert "alice: 70, bob: 70" in printed and "holdout: 10 rows" in printed
    assert sorted(p.name for p in out.iterdir()) == ["holdout.csv", "parties", "spec.yaml"]
    assert sorted(p.name for p in (out / "parties").iterdir()) == ["alice.csv", "bob.csv"]
    parts = [pd.read_csv(out / "parties" / f"{n}.csv") for n in ("alice", "bob")]
    parts.append(pd.read_csv(out / "holdout.csv"))
    combined = pd.concat(parts, ignore_index=True)
    assert len(combined) == 150
    original = iris_frame("classification")
    key = list(original.columns)
    # Together the files hold exactly Iris's rows (as a multiset), none lost or added.
    pd.testing.assert_frame_equal(
        combined.sort_values(key).reset_index(drop=True),
        original.sort_values(key).reset_index(drop=True),
    )
    spec = load_spec(out / "spec.yaml")
    assert (spec.task, spec.target, spec.seed) == ("classification", "species", 3)


def test_dataset_variants(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ml", "dataset", "iris-large", "--task", "regression", "--out"]
    assert main([*argv, str(tmp_path / "l")]) == 0
    shards = [pd.read_csv(tmp_path / "l" / "parties" / f"party-{i}.csv") for i in (1, 2)]
    assert [len(s) for s in shards] == [7500, 7500]
    assert "petal_width" in shards[0].columns and "species" not in shards[0].columns
    assert yaml.safe_load((tmp_path / "l" / "spec.yaml").read_text())["target"] == "petal_width"
    argv = ["ml", "dataset", "synthetic", "--rows", "300", "--parties", "3", "--out"]
    assert main([*argv, str(tmp_path / "s")]) == 0
    assert sorted(p.name for p in (tmp_path / "s" / "parties").iterdir()) == [
        "party-1.csv",
        "party-2.csv",
        "party-3.csv",
    ]
    assert len(pd.read_csv(tmp_path / "s" / "parties" / "party-3.csv")) == 100
    capsys.readouterr()
    assert main(["ml", "dataset", "mnist", "--out", str(tmp_path / "x")]) == 2
    assert "unknown dataset 'mnist'" in capsys.readouterr().err
    assert main(["ml", "dataset", "iris", "--names", "a,../b", "--out", str(tmp_path / "x")]) == 2
    assert main(["ml", "dataset", "iris", "--holdout", "150", "--out", str(tmp_path / "x")]) == 2
    assert not (tmp_path / "x").exists() or list((tmp_path / "x").iterdir()) == []


def test_inspect_lists_types_and_fails_on_untrusted_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    iris = iris_frame("classification")
    model = RandomForestClassifier(n_estimators=2, random_state=0)
    model.fit(iris.drop(columns="species"), iris["species"])
    good = tmp_path / "good.skops"
    skops.io.dump(model, good)
    assert main(["ml", "inspect", str(good)]) == 0
    out = capsys.readouterr().out
    assert "sklearn.tree._tree.Tree" in out and "all 9 types trusted" in out
    model.hook = os.system
    bad = tmp_path / "bad.skops"
    skops.io.dump(model, bad)
    assert main(["ml", "inspect", str(bad)]) == 4
    captured = capsys.readouterr()
    assert f"{os.name}.system" in captured.out and "UNTRUSTED" in captured.out
    assert "1 untrusted type(s)" in captured.err
    pickled = tmp_path / "model.skops"
    pickled.write_bytes(pickle.dumps(model))
    assert main(["ml", "inspect", str(pickled)]) == 4
    assert "pickle" in capsys.readouterr().err


def test_predict_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    iris = iris_frame("classification")
    model = tmp_path / "model.skops"
    from seml.ml import save_model

    save_model(RandomForestClassifier(n_estimators=2).fit(iris.iloc[:, :4], iris["species"]), model)
    inputs = tmp_path / "in.csv"
    iris.drop(columns="sepal_width").to_csv(inputs, index=False)
    out = tmp_path / "pred.csv"
    argv = ["ml", "predict", "--model", str(model), "--input", str(inputs), "--out", str(out)]
    assert main(argv) == 2
    assert "lacks the model's feature columns ['sepal_width']" in capsys.readouterr().err
    assert not out.exists()
    iris.to_csv(inputs, index=False)
    assert main([*argv, "--proba"]) == 0
    assert "wrote 150 predictions" in capsys.readouterr().out
    assert pd.read_csv(out).shape == (150, 5)


def test_cli_import_does_not_load_sklearn_or_pandas() -> None:
    code = (
        "import sys, seml.cli\n"
        "heavy = [m for m in ('sklearn', 'pandas', 'skops') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == ""


def test_dataset_into_an_unwritable_place_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "taken"
    blocker.write_text("a file, not a folder")
    assert main(["ml", "dataset", "iris", "--out", str(blocker)]) == 6
    assert "cannot create folder" in capsys.readouterr().err
    assert blocker.read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
