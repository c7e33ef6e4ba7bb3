"""A user's own training script, run as a service's command, uses the same helpers."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd

from seml.ml import holdout, iris_frame, model_types, predict, split_parties

SCRIPT = """
import sys
from pathlib import Path

from sklearn.ensemble import GradientBoostingClassifier

from seml.ml import load_datasets, save_model

data = load_datasets(Path(sys.argv[1]))
x, y = data.drop(columns="species"), data["species"]
model = GradientBoostingClassifier(n_estimators=20, random_state=0).fit(x, y)
print(save_model(model, Path(sys.argv[2]) / "model.skops"))
"""


def test_a_training_script_uses_load_datasets_and_save_model(tmp_path: Path) -> None:
    rest, held = holdout(iris_frame("classification"), 10, seed=0)
    data = tmp_path / "volume" / "data"
    data.mkdir(parents=True)
    for i, shard in enumerate(split_parties(rest, 2, seed=0)):
        shard.to_csv(data / f"party-{i}.csv", index=False)
    script = tmp_path / "train.py"
    script.write_text(SCRIPT)
    out = tmp_path / "volume" / "model"
    done = subprocess.run(
        [sys.executable, str(script), str(data), str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 64  # the model file's SHA-256
    assert all(t.trusted for t in model_types(out / "model.skops"))
    result = predict(out / "model.skops", held, tmp_path / "pred.csv")
    assert (result["prediction"] == held["species"]).mean() >= 0.8
    assert pd.read_csv(tmp_path / "pred.csv").shape == (10, 2)
