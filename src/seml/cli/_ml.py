"""`seml ml`: the ML provider (train), the model runner (predict), datasets and model inspection.

Heavy libraries (pandas, scikit-learn, skops) are imported inside the commands only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, cast

import typer

from seml.errors import PolicyError, UsageError

if TYPE_CHECKING:
    from seml.ml import Task

__all__ = ["register"]

ml_app = typer.Typer(
    name="ml",
    help="Train a declared model on a folder of datasets, run it, make demo datasets.",
    no_args_is_help=True,
)

_TASKS = ("classification", "regression")

_MAX_MODEL_SIZE = typer.Option(
    "--max-model-size",
    help="Most a model file may inflate to, in total and per member (e.g. 512M, 4G). Default 1G.",
)


@ml_app.command("train")
def train_command(
    spec: Annotated[Path, typer.Option("--spec", help="Training spec (YAML or JSON).")],
    data: Annotated[
        Path,
        typer.Option(
            "--data", help="Folder whose CSV and Parquet files (recursively) are the data."
        ),
    ],
    out: Annotated[
        Path, typer.Option("--out", help="Folder to write model.skops and metrics.json into.")
    ],
) -> None:
    """Train the estimator SPEC declares on every dataset in DATA; write the model and metrics."""
    from seml.ml import METRICS_FILE, MODEL_FILE, load_spec, train_folder

    training = load_spec(spec)
    with _busy(f"training {training.estimator} on {data}"):
        result = train_folder(training, data, out)
    rows = f"{result.rows_train} train / {result.rows_test} test rows"
    typer.echo(f"trained {result.estimator} ({result.task}, target {result.target!r}) on {rows}")
    for name, value in result.metrics.items():
        shown = "undefined" if value is None else f"{value:.4f}"
        typer.echo(f"  {name} ({result.evaluated_on}): {shown}")
    typer.echo(f"wrote {out / MODEL_FILE} (sha256 {result.extra['model_sha256']})")
    typer.echo(f"wrote {out / METRICS_FILE}")


@ml_app.command("predict")
def predict_command(
    model: Annotated[
        Path, typer.Option("--model", help="Model file (skops) written by seml ml train.")
    ],
    input_: Annotated[
        Path,
        typer.Option("--input", help="Input rows: a CSV or Parquet file, or a folder of them."),
    ],
    out: Annotated[Path, typer.Option("--out", help="Predictions CSV to write.")],
    proba: Annotated[
        bool, typer.Option("--proba", help="Add one probability column per class (classifiers).")
    ] = False,
    id_column: Annotated[
        str | None,
        typer.Option("--id-column", help="Copy this input column into the predictions as row id."),
    ] = None,
    max_model_size: Annotated[str | None, _MAX_MODEL_SIZE] = None,
) -> None:
    """Load MODEL (within size limits, under the allow-list of trusted types, its internal
    arrays checked) and write predictions for INPUT."""
    from seml.ml import model_limits, parse_size, predict

    limits = model_limits(None if max_model_size is None else parse_size(max_model_size))
    with _busy(f"predicting with {model}"):
        result = predict(model, input_, out, proba=proba, id_column=id_column, limits=limits)
    typer.echo(f"wrote {len(result)} predictions to {out}")


@ml_app.command("inspect")
def inspect_command(
    model: Annotated[Path, typer.Argument(help="Model file to inspect (nothing is predicted).")],
    max_model_size: Annotated[str | None, _MAX_MODEL_SIZE] = None,
) -> None:
    """List the types a model file names and whether SEML trusts them, then run the checks
    predict runs before loading it. Exit 4 for an untrusted type, 3 for an inconsistent model."""
    from seml.ml import inspect_model, model_limits, parse_size

    limits = model_limits(None if max_model_size is None else parse_size(max_model_size))
    types = inspect_model(model, limits=limits)
    width = max(len(t.name) for t in types)
    for t in types:
        typer.echo(f"{t.name:<{width}}  {'trusted' if t.trusted else 'UNTRUSTED'}")
    untrusted = [t.name for t in types if not t.trusted]
    if untrusted:
        raise PolicyError(f"{model} names {len(untrusted)} untrusted type(s); it will not load")
    typer.echo(f"{model}: all {len(types)} types trusted; internal arrays consistent")


@ml_app.command("dataset")
def dataset_command(
    name: Annotated[
        str, typer.Argument(help="iris, iris-large (Iris x 100 = 15,000 rows), synthetic.")
    ],
    out: Annotated[Path, typer.Option("--out", help="Folder to write the shards into.")],
    task: Annotated[
        str, typer.Option("--task", help="classification or regression.")
    ] = "classification",
    parties: Annotated[int, typer.Option("--parties", help="Number of disjoint shards.")] = 2,
    names: Annotated[
        str | None,
        typer.Option("--names", help="Comma-separated party names; overrides --parties."),
    ] = None,
    holdout_rows: Annotated[
        int, typer.Option("--holdout", help="Rows kept back as holdout.csv (in no shard).")
    ] = 0,
    seed: Annotated[int, typer.Option("--seed", help="Seed for shuffling and synthetic data.")] = 0,
    rows: Annotated[int, typer.Option("--rows", help="Rows of the synthetic dataset.")] = 10_000,
    features: Annotated[
        int, typer.Option("--features", help="Feature columns of the synthetic dataset.")
    ] = 8,
    factor: Annotated[
        int, typer.Option("--factor", help="Repetitions of Iris for iris-large.")
    ] = 100,
) -> None:
    """Write a dataset as party shards, an optional holdout and a training spec.

    Layout: OUT/parties/<name>.csv (disjoint shards; train with --data OUT/parties),
    OUT/holdout.csv (rows in no shard, for predict) and OUT/spec.yaml (a RandomForest spec).
    """
    from seml.ml import make_dataset, write_dataset

    if task not in _TASKS:
        raise UsageError(f"unknown task {task!r} (classification or regression)")
    kind = cast("Task", task)
    if names is None:
        if parties < 1:
            raise UsageError(f"--parties must be at least 1, got {parties}")
        party_names = [f"party-{i}" for i in range(1, parties + 1)]
    else:
        party_names = [n.strip() for n in names.split(",")]
    frame = make_dataset(name, kind, seed=seed, rows=rows, features=features, factor=factor)
    written = write_dataset(
        frame, out, name=name, task=kind, parties=party_names, holdout_rows=holdout_rows, seed=seed
    )
    sizes = ", ".join(f"{p}: {n}" for p, n in written.shard_rows.items())
    typer.echo(f"{name} ({task}, target {written.target!r}, {written.rows} rows) -> {out}")
    typer.echo(f"  shards in {out / 'parties'}: {sizes}")
    if written.holdout is not None:
        typer.echo(f"  holdout: {written.holdout_rows} rows in {written.holdout}")
    typer.echo(f"  training spec: {written.spec}")


@contextlib.contextmanager
def _busy(what: str) -> Iterator[None]:
    """A Rich spinner on stderr while long work runs, only when stderr is a terminal."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:
        yield
        return
    with console.status(what):
        yield


def register(app: typer.Typer) -> None:
    """Attach `seml ml ...`."""
    app.add_typer(ml_app, name="ml")
