"""A party pulls the published models again: the model runner must run exactly what is
published now, never a model that was withdrawn (the flow's pull is a --mirror pull)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from seml.cli import main
from seml.flow import collaboration_session, predict_all
from seml.flow._plan import training_specs
from seml.policy import new_key_pair, public_key_text


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A holdout CSV and one trained model folder."""
    root = tmp_path_factory.mktemp("ml")
    data = root / "iris"
    assert (
        main(
            [
                "ml",
                "dataset",
                "iris",
                "--out",
                str(data),
                "--names",
                "a,b",
                "--holdout",
                "10",
                "--seed",
                "1",
            ]
        )
        == 0
    )
    spec, parties = data / "spec.yaml", data / "parties"
    assert (
        main(["ml", "train", "--spec", str(spec), "--data", str(parties), "--out", str(root / "m")])
        == 0
    )
    return data / "holdout.csv", root / "m"


def test_a_withdrawn_model_is_not_run_after_the_next_pull(
    trained: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    holdout, model = trained
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", "model key")
    published = tmp_path / "publish"
    for name in ("classification", "regression"):
        shutil.copytree(model, published / name)
    remote = (tmp_path / "store").as_uri()
    state = ["--state-dir", str(tmp_path / "s")]
    # The command the flow's pull-<party> service runs.
    key = public_key_text(new_key_pair().public)
    shared = collaboration_session(
        name="iris",
        parties={"alice": key},
        measurement="ab" * 32,
        storage=remote,
        specs=training_specs(["classification"]),
    )
    service = shared.service("pull-alice")
    assert service is not None and "--mirror" in service.command
    pull = ["pull", remote, str(tmp_path / "published"), "--mirror", "-q", *state]

    assert main(["push", str(published), remote, "-q", *state]) == 0
    assert main(pull) == 0
    assert [p.name for p in predict_all(tmp_path / "published", holdout, tmp_path / "p1")] == [
        "classification.csv",
        "regression.csv",
    ]
    shutil.rmtree(published / "regression")  # withdrawn
    assert main(["push", str(published), remote, "-q", *state]) == 0
    capsys.readouterr()
    assert main(pull[:-4] + pull[-3:]) == 2  # without --mirror: refused, the folder is not empty
    assert "is not empty" in capsys.readouterr().err
    assert main(pull) == 0
    written = predict_all(tmp_path / "published", holdout, tmp_path / "p2")
    assert [p.name for p in written] == ["classification.csv"]
