"""`seml demo` and `seml flow ...`: the whole flow, and the programs its services run."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

import typer

__all__ = ["register"]

S3Endpoint = Annotated[
    str | None,
    typer.Option(
        "--s3-endpoint",
        envvar="SEML_S3_ENDPOINT",
        show_envvar=False,
        help="S3 endpoint for s3:// remotes (default: $SEML_S3_ENDPOINT, else the profile's).",
    ),
]


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
    flow = typer.Typer(
        help="The programs the flow's services run (normally under `seml run`).",
        no_args_is_help=True,
    )
    flow.command("fetch")(fetch)
    flow.command("train")(train)
    flow.command("predict")(predict)
    flow.command("copy-in")(copy_in)
    flow.command("copy-out")(copy_out)
    flow.command("sessions")(sessions)
    app.add_typer(flow, name="flow")


def demo(
    workdir: Annotated[
        Path | None,
        typer.Option("--workdir", help="Work folder to use and keep (default: a new temp folder)."),
    ] = None,
    dataset: Annotated[
        str, typer.Option("--dataset", help="iris (150 rows) or iris-large (15,000 rows).")
    ] = "iris",
    storage: Annotated[
        str | None,
        typer.Option("--storage", help="Object storage (default: file://WORKDIR/cloud/storage)."),
    ] = None,
    s3_endpoint: S3Endpoint = None,
) -> None:
    """Play the whole SEML flow on this machine and verify it (exit 0 only if verified).

    Two parties (alice, bob) agree on a session, upload their halves of Iris encrypted, the
    cloud side fetches them into a protected volume, trains a classifier and a regressor,
    publishes the model encrypted; each party keeps the run's receipt and verifies it offline,
    approves the model it names, then pulls it and runs it on held-out rows. Attestation is
    simulated (no TEE hardware) and says so.
    """
    from seml.flow import FlowConfig, run_demo

    root = workdir or Path(tempfile.mkdtemp(prefix="seml-demo-"))
    if workdir is not None and workdir.exists() and any(workdir.iterdir()):
        from seml.errors import UsageError

        raise UsageError(f"--workdir {workdir} is not empty: give a new or empty folder")
    config = FlowConfig(
        workdir=root,
        dataset=dataset,
        storage=storage,
        s3_endpoint=s3_endpoint,
        receipts=True,
        release=True,
    )
    if not run_demo(config):
        raise typer.Exit(1)


def fetch(
    dest: Annotated[Path, typer.Argument(help="Folder to pull each party's data into.")],
    sources: Annotated[list[str], typer.Argument(help="NAME=REMOTE for each party.")],
    state_dir: Annotated[
        Path | None, typer.Option("--state-dir", help="Where last seen manifest versions live.")
    ] = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="Native baseline: copy without decryption.")
    ] = False,
    s3_endpoint: S3Endpoint = None,
) -> None:
    """Pull and verify every party's encrypted dataset into DEST/NAME.

    Each party's key is read from SEML_KEY_<NAME> (set by the session, never on argv).
    """
    from seml.flow import copy_out
    from seml.flow import fetch as run_fetch
    from seml.flow._programs import parse_sources

    parsed = parse_sources(sources)
    if plain:
        for name, remote in parsed:
            copy_out(remote, dest / name, s3_endpoint=s3_endpoint)
        return
    from seml._claims import add_claims, claims_file

    inputs = run_fetch(dest, parsed, state_dir=state_dir, s3_endpoint=s3_endpoint)
    add_claims(claims_file(), inputs=inputs)
    for i in inputs:
        typer.echo(
            f"fetched {i['party']}: {i['files']} file(s), verified (manifest "
            f"v{i['manifest_version']})"
        )


def train(
    specs: Annotated[list[Path], typer.Argument(help="Training specs; one model each.")],
    data: Annotated[Path, typer.Option("--data", help="Folder of CSV/Parquet datasets.")],
    out: Annotated[Path, typer.Option("--out", help="Models go to OUT/<spec name>/.")],
) -> None:
    """Train every spec on DATA (one process, one import of scikit-learn)."""
    from seml._claims import add_claims, claims_file
    from seml.flow import train_all
    from seml.flow._programs import training_claims

    results = train_all(data, out, specs)
    claims = claims_file()
    if claims is not None:
        add_claims(claims, training=training_claims(out, specs, results))
    for name, metrics in results.items():
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if isinstance(v, float))
        typer.echo(f"trained {name}: {shown}")


def predict(
    models: Annotated[Path, typer.Option("--models", help="Folder of <name>/model.skops.")],
    input_: Annotated[Path, typer.Option("--input", help="CSV or Parquet rows to predict.")],
    out: Annotated[Path, typer.Option("--out", help="Folder for <name>.csv predictions.")],
) -> None:
    """Run every model below MODELS on INPUT."""
    from seml.flow import predict_all

    for path in predict_all(models, input_, out):
        typer.echo(f"wrote {path}")


def copy_in(
    src: Annotated[Path, typer.Argument(help="Folder to copy.")],
    remote: Annotated[str, typer.Argument(help="Store URL (file://, s3://, path).")],
    s3_endpoint: S3Endpoint = None,
) -> None:
    """Native baseline: copy a folder into storage as it is (no encryption)."""
    from seml.flow import copy_in as run

    typer.echo(f"copied {run(src, remote, s3_endpoint=s3_endpoint)} file(s)")


def copy_out(
    remote: Annotated[str, typer.Argument(help="Store URL (file://, s3://, path).")],
    dst: Annotated[Path, typer.Argument(help="Folder to copy into.")],
    s3_endpoint: S3Endpoint = None,
) -> None:
    """Native baseline: copy every object of a store into a folder as it is."""
    from seml.flow import copy_out as run

    typer.echo(f"copied {run(remote, dst, s3_endpoint=s3_endpoint)} file(s)")


def _pairs(values: list[str], what: str) -> dict[str, str]:
    from seml.errors import UsageError

    out: dict[str, str] = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{what} is NAME=VALUE, got {v!r}")
        out[name] = value
    return out


def sessions(
    out: Annotated[Path, typer.Argument(help="Folder to write the session documents into.")],
    storage: Annotated[
        str, typer.Option("--storage", help="Object storage URL (s3://bucket/prefix).")
    ],
    party: Annotated[
        list[str], typer.Option("--party", help="NAME=PUBLIC_KEY_FILE, once per party.")
    ],
    platform: Annotated[
        list[str] | None,
        typer.Option(
            "--platform",
            help="MACHINE=PLATFORM_ID (a party's name, or cloud): pin services to machines.",
        ),
    ] = None,
    measurement: Annotated[
        str | None,
        typer.Option("--measurement", help="Allowed measurement (default: `seml measure` here)."),
    ] = None,
    name: Annotated[str, typer.Option("--name", help="Collaboration session name.")] = "iris",
    task: Annotated[
        list[str] | None, typer.Option("--task", help="classification and/or regression.")
    ] = None,
) -> None:
    """Write the flow's collaboration session and each party's private session.

    The private sessions export each party's data key to the collaboration's fetch service,
    pinned to the collaboration session's hash, so they are written after it. The sessions
    name no machine's path or endpoint: each machine gives its services its own folders
    (data/, input/, output/), storage endpoint and credentials, and `seml` (see `seml init`).
    """
    from seml._fs import write_atomic
    from seml.errors import UsageError
    from seml.flow._plan import (
        collaboration_session,
        dump_session,
        private_session,
        training_specs,
    )
    from seml.policy import session_hash
    from seml.runtime import measure

    keys = _pairs(party, "--party")
    if len(keys) < 2:
        raise UsageError("give at least two --party NAME=PUBLIC_KEY_FILE")
    publics: dict[str, str] = {}
    # By name: the same keys and ids give the same documents, whichever order each party
    # types them in (the others write them too, to approve exactly what they wrote).
    for p, key_file in sorted(keys.items()):
        try:
            publics[p] = Path(key_file).read_text().strip()
        except OSError as e:
            raise UsageError(f"cannot read {p}'s public key {key_file}: {e}") from e
    platforms = _pairs(platform or [], "--platform")
    m = measurement or measure([], [])
    doc = collaboration_session(
        name=name,
        parties=publics,
        measurement=m,
        storage=storage,
        specs=training_specs(task or ["classification", "regression"]),
        platforms=platforms,
    )
    shared_hash = session_hash(doc)
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / f"{name}.yaml", dump_session(doc))
    typer.echo(f"{out / f'{name}.yaml'}: {shared_hash}")
    for p, public in publics.items():
        private = private_session(
            collaboration=name,
            collaboration_hash=shared_hash,
            party=p,
            public_key=public,
            measurement=m,
            storage=storage,
            platform=platforms.get(p),
        )
        path = out / f"{name}-{p}.yaml"
        write_atomic(path, dump_session(private))
        typer.echo(f"{path}: private session of {p}")
