"""The SEML flow's sessions and folders, as data: who holds what, and which service does what.

Pure: builds sessions (`seml.policy.Session`, the schema's one home) and paths, touches
nothing. `seml demo` and `seml bench` write these sessions, and `examples/iris/` shows the same
sessions for several machines.

The sessions name no path of any machine: a command's program is `seml` (each machine runs its
own, `seml run --seml` or the profile), the storage endpoint and credentials come from the
machine that runs the service (`seml run` passes them), and a party's files are in folders its
machine links into the service's workspace by name: `data/` (what it uploads), `input/` (the
rows it runs the model on, `input/holdout.csv`) and `output/` (predictions and metrics). So
alice and bob may keep their files under different roots, and everyone measures one command.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seml.errors import UsageError
from seml.flow._programs import key_variable
from seml.policy import (
    Approval,
    ApprovalRule,
    Export,
    Release,
    Secret,
    SecretImport,
    SecretKind,
    Security,
    Service,
    Session,
    Storage,
    Volume,
    schema_errors,
)

__all__ = [
    "DATA_FOLDER",
    "HOLDOUT_FILE",
    "INPUT_FOLDER",
    "OUTPUT_FOLDER",
    "FlowLayout",
    "collaboration_session",
    "dump_session",
    "private_session",
    "remote",
    "training_specs",
]

REGRESSION_FEATURES = ("sepal_length", "sepal_width", "petal_length")
# The folders a party's machine gives the flow's services (`seml run --folder NAME=PATH`, or the
# profile's `folders`), by the names the sessions use.
DATA_FOLDER = "data"
INPUT_FOLDER = "input"
OUTPUT_FOLDER = "output"
HOLDOUT_FILE = "holdout.csv"
# No TEE on the machines the flow runs on: its sessions accept simulated evidence, and say so.
_SIMULATION = Security(tolerate=["simulation"], ignore_advisories=[])


class _PlainDumper(yaml.SafeDumper):
    """YAML without anchors and aliases: a session is read by people before they sign it."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def dump_session(session: Session) -> str:
    """The session as YAML for people to read before they sign it: the fields it was built
    with, in the schema's order (the hash covers the validated session, not this text)."""
    document = session.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return yaml.dump(document, Dumper=_PlainDumper, sort_keys=False, width=100)


def training_specs(
    tasks: Sequence[str], *, dataset: str = "iris", seed: int = 0, n_estimators: int = 100
) -> dict[str, str]:
    """The training specs (YAML text by task) the flow's train service gets from the session.

    Classification predicts the Iris species from the four measures; regression predicts petal
    width from the other three (so one table serves both).
    """
    specs: dict[str, str] = {}
    for task in tasks:
        if task == "classification":
            doc: dict[str, Any] = {
                "task": "classification",
                "target": "target" if dataset == "synthetic" else "species",
                "estimator": "sklearn.ensemble.RandomForestClassifier",
                "params": {"n_estimators": n_estimators},
            }
        elif task == "regression":
            if dataset == "synthetic":
                raise UsageError("the synthetic dataset is for classification only")
            doc = {
                "task": "regression",
                "target": "petal_width",
                "features": list(REGRESSION_FEATURES),
                "estimator": "sklearn.ensemble.RandomForestRegressor",
                "params": {"n_estimators": n_estimators},
            }
        else:
            raise UsageError(f"unknown task {task!r}: classification or regression")
        doc.update({"split": 0.2, "seed": seed})
        specs[task] = yaml.safe_dump(doc, sort_keys=False)
    return specs


def remote(storage: str, *parts: str) -> str:
    """`storage` (file://..., s3://bucket/prefix or a path) joined with `parts`."""
    return "/".join([storage.rstrip("/"), *parts])


@dataclass(frozen=True)
class FlowLayout:
    """The work folder: each top-level folder stands for one machine or role.

    parties/<name>/   that party's machine: its keys, plaintext data (data/), the rows it
                      runs the model on (input/), predictions (predictions/)
    cloud/storage/    the object store (when file://): encrypted objects only
    cloud/volumes/    the cloud machine's protected volumes: encrypted only
    cas/              the attestation service's state (its master key encrypts the secrets)
    sessions/         the agreed collaboration session and the parties' signatures
    """

    root: Path
    parties: tuple[str, ...]

    def party(self, name: str) -> Path:
        return self.root / "parties" / name

    def key(self, name: str) -> Path:
        return self.party(name) / f"{name}.key"

    def platform_key(self, name: str) -> Path:
        return self.party(name) / "platform.key"

    def data(self, name: str) -> Path:
        return self.party(name) / "data"

    def input(self, name: str) -> Path:
        return self.party(name) / INPUT_FOLDER

    def holdout(self, name: str) -> Path:
        return self.input(name) / HOLDOUT_FILE

    def predictions(self, name: str) -> Path:
        return self.party(name) / "predictions"

    def party_volumes(self, name: str) -> Path:
        return self.party(name) / "volumes"

    def party_state(self, name: str) -> Path:
        return self.party(name) / "state"

    def folders(self, machine: str) -> dict[str, Path]:
        """The folders `machine` (a party, or "cloud") gives the services, by session name."""
        if machine == "cloud":
            return {}
        return {
            DATA_FOLDER: self.data(machine),
            INPUT_FOLDER: self.input(machine),
            OUTPUT_FOLDER: self.predictions(machine),
        }

    @property
    def cloud(self) -> Path:
        return self.root / "cloud"

    @property
    def storage(self) -> Path:
        return self.cloud / "storage"

    @property
    def cloud_volumes(self) -> Path:
        return self.cloud / "volumes"

    @property
    def cloud_platform_key(self) -> Path:
        return self.cloud / "platform.key"

    @property
    def cas(self) -> Path:
        return self.root / "cas"

    @property
    def sessions(self) -> Path:
        return self.root / "sessions"


def _service(
    name: str,
    measurement: str,
    command: Sequence[str],
    *,
    environment: Mapping[str, str] | None = None,
    files: Mapping[str, str] | None = None,
    volumes: Mapping[str, str] | None = None,
    platforms: Sequence[str] | None = None,
) -> Service:
    where: dict[str, Any] = {"platforms": list(platforms)} if platforms else {}
    return Service(
        name=name,
        measurements=[measurement],
        command=list(command),
        environment=dict(environment or {}),
        files=dict(files or {}),
        volumes=dict(volumes or {}),
        **where,
    )


def collaboration_session(
    *,
    name: str,
    parties: Mapping[str, str],
    measurement: str,
    storage: str,
    specs: Mapping[str, str],
    platforms: Mapping[str, str] | None = None,
    release: ApprovalRule | None = None,
) -> Session:
    """The session every party signs: fetch, train, publish in the cloud; pull and run at each
    party. Data keys are imported from each party's private session; the model key is
    generated by the service and readable only by publish and the parties' model services.
    With `release`, the parties' model services get the model key only once the rule's
    owners approved the model a run's receipt names (`seml model approve`).

    `platforms` maps a party name (and "cloud") to its platform id; with it, each service
    only gets its keys on the machine it belongs to. No machine-local path or endpoint: see the
    module's docstring.
    """
    with schema_errors(f"collaboration session {name}"):
        names = list(parties)
        plat = platforms or {}

        def on(machine: str) -> list[str] | None:
            return [plat[machine]] if machine in plat else None

        sync_state = ["--state-dir", "training/.sync-state"]
        services = [
            _service(
                "fetch",
                measurement,
                [
                    "seml",
                    "flow",
                    "fetch",
                    "training/datasets",
                    *sync_state,
                    *(f"{p}={remote(storage, 'datasets', p)}" for p in names),
                ],
                environment={key_variable(p): f"$$SEML::{p}_data_key$$" for p in names},
                volumes={"training": "/training"},
                platforms=on("cloud"),
            ),
            _service(
                "train",
                measurement,
                [
                    "seml",
                    "flow",
                    "train",
                    "--data",
                    "training/datasets",
                    "--out",
                    "training/model",
                    *(f"specs/{task}.yaml" for task in specs),
                ],
                files={f"/specs/{task}.yaml": text for task, text in specs.items()},
                volumes={"training": "/training"},
                platforms=on("cloud"),
            ),
            _service(
                "publish",
                measurement,
                [
                    "seml",
                    "push",
                    "training/model",
                    remote(storage, "model"),
                    "--quiet",
                    *sync_state,
                ],
                environment={"SEML_CRYPT_PASSWORD": "$$SEML::model_key$$"},
                volumes={"training": "/training"},
                platforms=on("cloud"),
            ),
        ]
        for p in names:
            services.append(
                _service(
                    f"pull-{p}",
                    measurement,
                    [
                        "seml",
                        "pull",
                        remote(storage, "model"),
                        "model/published",
                        "--mirror",  # exactly the published models: no stale one is run
                        "--quiet",
                        "--state-dir",
                        "model/.sync-state",
                    ],
                    environment={"SEML_CRYPT_PASSWORD": "$$SEML::model_key$$"},
                    volumes={f"model-{p}": "/model"},
                    platforms=on(p),
                )
            )
            services.append(
                _service(
                    f"run-{p}",
                    measurement,
                    [
                        "seml",
                        "flow",
                        "predict",
                        "--models",
                        "model/published",
                        "--input",
                        f"{INPUT_FOLDER}/{HOLDOUT_FILE}",
                        "--out",
                        OUTPUT_FOLDER,
                    ],
                    volumes={f"model-{p}": "/model"},
                    platforms=on(p),
                )
            )
        return Session(
            version=1,
            name=name,
            predecessor=None,
            parties=dict(parties),
            approval=Approval(create=ApprovalRule.all_of(names), update=ApprovalRule.all_of(names)),
            security=_SIMULATION,
            secrets=[
                *(
                    Secret.model_validate(  # "import" is a Python keyword: by alias
                        {
                            "name": f"{p}_data_key",
                            "import": SecretImport(session=f"{name}-{p}", secret="data_key"),  # noqa: S106 - a name
                            "readers": ["fetch"],
                        }
                    )
                    for p in names
                ),
                Secret(
                    name="model_key",
                    kind=SecretKind.ASCII,
                    size=32,
                    readers=["publish", *(f"pull-{p}" for p in names)],
                    release=(
                        Release(approve=release, producers=["publish"])
                        if release is not None
                        else None
                    ),
                ),
            ],
            volumes=[Volume(name="training"), *(Volume(name=f"model-{p}") for p in names)],
            services=services,
            storage=Storage(location=storage),
        )


def private_session(
    *,
    collaboration: str,
    collaboration_hash: str,
    party: str,
    public_key: str,
    measurement: str,
    storage: str,
    platform: str | None = None,
) -> Session:
    """A party's own session: its data key (generated by the service, never seen by anyone)
    and its uploader, which pushes the party's `data/` folder (its sync state goes where the
    party's machine keeps it: SEML_STATE_DIR, passed by `seml run`); the key is exported only
    to the collaboration's fetch service, pinned to the collaboration session's hash."""
    with schema_errors(f"private session {collaboration}-{party}"):
        return Session(
            version=1,
            name=f"{collaboration}-{party}",
            predecessor=None,
            parties={party: public_key},
            approval=Approval(
                create=ApprovalRule.all_of([party]), update=ApprovalRule.all_of([party])
            ),
            security=_SIMULATION,
            secrets=[
                Secret(
                    name="data_key",
                    kind=SecretKind.ASCII,
                    size=32,
                    readers=["upload"],
                    export=[
                        Export(
                            session=collaboration,
                            session_hash=collaboration_hash,
                            services=["fetch"],
                        )
                    ],
                )
            ],
            services=[
                _service(
                    "upload",
                    measurement,
                    [
                        "seml",
                        "push",
                        DATA_FOLDER,
                        remote(storage, "datasets", party),
                        "--quiet",
                    ],
                    environment={"SEML_CRYPT_PASSWORD": "$$SEML::data_key$$"},
                    platforms=[platform] if platform else None,
                )
            ],
            storage=Storage(location=storage),
        )
