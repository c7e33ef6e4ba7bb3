"""The SEML flow (paper, figure 3) on one machine: agree, upload, fetch, train, publish, pull, run.

Every step is a separate `seml` process, exactly the command a party or the operator would
type, so what is measured is what a user feels. `Flow` runs in two modes:

- confidential: the real thing: sessions signed and submitted, every service under `seml run`
  (attested, keys released by the attestation service), data encrypted, protected volumes;
- native: the same programs on the same storage with no encryption, no attestation and no
  volumes: the baseline `seml bench` compares against.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seml._fs import write_atomic
from seml.cas import LocalCas
from seml.cli import seml_command
from seml.errors import UsageError
from seml.flow._plan import (
    FlowLayout,
    collaboration_session,
    dump_session,
    private_session,
    remote,
    training_specs,
)
from seml.flow._runner import StepResult, environment, run_measured
from seml.policy import ApprovalRule, session_hash

__all__ = ["Flow", "FlowConfig", "Mode", "PhaseResult"]

Mode = Literal["confidential", "native"]


@dataclass(frozen=True)
class FlowConfig:
    workdir: Path
    parties: tuple[str, ...] = ("alice", "bob")
    dataset: str = "iris"  # iris (150 rows), iris-large (Iris x factor), or synthetic
    factor: int = 100  # iris-large: 100 gives the paper's 15,000 rows
    rows: int = 0  # synthetic only
    tasks: tuple[str, ...] = ("classification", "regression")
    storage: str | None = None  # default: file://<workdir>/cloud/storage
    s3_endpoint: str | None = None
    holdout: int = 5  # rows per party kept back for the model runner
    seed: int = 0
    session: str = "iris"
    n_estimators: int = 100
    # Each party fetches the run's receipt into its folder and verifies it offline (`seml demo`).
    receipts: bool = False
    # The model key waits for every party's approval of the receipt's model (implies receipts).
    release: bool = False


@dataclass(frozen=True)
class PhaseResult:
    phase: str
    step: StepResult


@dataclass
class Flow:
    config: FlowConfig
    mode: Mode = "confidential"
    on_step: Callable[[str, str, StepResult], None] | None = None
    seml: list[str] = field(default_factory=seml_command)

    def __post_init__(self) -> None:
        if len(self.config.parties) < 2:
            raise UsageError("the flow needs at least two parties")
        self.layout = FlowLayout(self.config.workdir.resolve(), self.config.parties)
        self.storage = self.config.storage or f"file://{self.layout.storage}"
        self.s3_args = ["--s3-endpoint", self.config.s3_endpoint] if self.config.s3_endpoint else []
        self.cas: LocalCas | None = None
        self.session_hash = ""
        self.measurement = ""
        self.phases: list[PhaseResult] = []
        self.metrics: dict[str, dict[str, Any]] = {}
        self.receipt_checks: list[tuple[str, bool, str]] = []  # (what, ok, detail)

    # -- running steps -----------------------------------------------------------------------

    def _env(self, machine: Mapping[str, str] | None = None) -> dict[str, str]:
        # Every step runs with the settings given here only: no profile of the user running
        # the demo (SEML_CONFIG_DIR names a folder without one) leaks into it.
        extra = {"SEML_CONFIG_DIR": str(self.layout.root / ".no-profile")}
        if self.cas:
            extra.update(self.cas.env)
        return environment({**extra, **(machine or {})})

    def step(
        self,
        label: str,
        args: Sequence[str],
        *,
        phase: str | None = None,
        cwd: Path | None = None,
        machine: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> StepResult:
        result = run_measured([*self.seml, *args], env=self._env(machine), cwd=cwd, check=check)
        if phase is not None:
            self.phases.append(PhaseResult(phase, result))
        if self.on_step is not None:
            self.on_step(label, phase or "", result)
        return result

    def service(
        self,
        session: str,
        service: str,
        phase: str | None,
        *,
        machine: str,
        label: str = "",
        check: bool = True,
    ) -> StepResult:
        """Run one service under `seml run` on `machine` (a party's name, or "cloud"), with that
        machine's settings: its volumes, platform key and folders (flags), its sync-state
        folder and storage endpoint (environment, which `seml run` passes to the service)."""
        lay = self.layout
        settings: dict[str, str] = {}
        if self.config.s3_endpoint:
            settings["SEML_S3_ENDPOINT"] = self.config.s3_endpoint
        if machine == "cloud":
            volumes, platform_key = lay.cloud_volumes, lay.cloud_platform_key
        else:
            volumes, platform_key = lay.party_volumes(machine), lay.platform_key(machine)
            settings["SEML_STATE_DIR"] = str(lay.party_state(machine))
        folders = [f"--folder={name}={path}" for name, path in lay.folders(machine).items()]
        return self.step(
            label or f"{service} runs attested on {machine}'s machine",
            [
                "run",
                "--session",
                session,
                "--service",
                service,
                "--volumes-dir",
                str(volumes),
                "--platform-key",
                str(platform_key),
                *folders,
            ],
            phase=phase,
            machine=settings,
            check=check,
        )

    # -- set-up ------------------------------------------------------------------------------

    def prepare_data(self) -> None:
        """Each party's plaintext shard and holdout rows on its own machine."""
        from seml.ml import enlarge, holdout, iris_frame, split_parties, synthetic

        c = self.config
        if c.dataset in ("iris", "iris-large"):
            frame = iris_frame("classification")
            if c.dataset == "iris-large":
                frame = enlarge(frame, c.factor)
        elif c.dataset == "synthetic":
            frame = synthetic(c.rows or 10_000, "classification", c.seed)
        else:
            raise UsageError(f"unknown dataset {c.dataset!r}: iris, iris-large or synthetic")
        rest, held = holdout(frame, c.holdout * len(c.parties), c.seed)
        shards = split_parties(rest, len(c.parties), c.seed)
        held_shards = split_parties(held, len(c.parties), c.seed)
        for name, shard, mine in zip(c.parties, shards, held_shards, strict=True):
            for folder in self.layout.folders(name).values():
                folder.mkdir(parents=True, exist_ok=True)
            shard.to_csv(self.layout.data(name) / f"{name}.csv", index=False)
            mine.to_csv(self.layout.holdout(name), index=False)

    def specs(self) -> dict[str, str]:
        c = self.config
        return training_specs(c.tasks, dataset=c.dataset, seed=c.seed, n_estimators=c.n_estimators)

    def start_cas(self) -> LocalCas:
        self.cas = LocalCas(self.layout.cas, env=environment({}), seml=self.seml)
        self.cas.start()
        return self.cas

    def agree(self) -> None:
        """Keys, sessions with measured values, both parties sign, submission."""
        lay, c = self.layout, self.config
        lay.sessions.mkdir(parents=True, exist_ok=True)
        publics: dict[str, str] = {}
        platforms: dict[str, str] = {}
        for p in c.parties:
            lay.party(p).mkdir(parents=True, exist_ok=True)
            if not lay.key(p).exists():
                self.step(f"{p} creates a key pair", ["keys", "new", p, "--dir", str(lay.party(p))])
            publics[p] = (lay.party(p) / f"{p}.pub").read_text().strip()
        for machine, key in [
            *((p, lay.platform_key(p)) for p in c.parties),
            ("cloud", lay.cloud_platform_key),
        ]:
            args = ["platform", "init" if not key.exists() else "id", "--platform-key", str(key)]
            out = self.step(f"{machine}'s machine gets its (simulated) platform id", args)
            platforms[machine] = out.stdout.strip()
        self.measurement = self.step("measure the services", ["measure"]).stdout.strip()
        doc = collaboration_session(
            name=c.session,
            parties=publics,
            measurement=self.measurement,
            storage=self.storage,
            specs=self.specs(),
            platforms=platforms,
            release=ApprovalRule.all_of(c.parties) if c.release else None,
        )
        shared = lay.sessions / f"{c.session}.yaml"
        write_atomic(shared, dump_session(doc))
        self.step("check the collaboration session", ["session", "check", str(shared)])
        self.session_hash = session_hash(doc)
        signatures: list[str] = []
        for p in c.parties:
            sig = lay.sessions / f"{c.session}.{p}.sig"
            self.step(
                f"{p} signs the collaboration session",
                ["session", "sign", str(shared), "--key", str(lay.key(p)), "-o", str(sig)],
            )
            signatures += ["-s", str(sig)]
        self.step(
            "submit the collaboration session", ["session", "submit", str(shared), *signatures]
        )
        for p in c.parties:
            private = private_session(
                collaboration=c.session,
                collaboration_hash=self.session_hash,
                party=p,
                public_key=publics[p],
                measurement=self.measurement,
                storage=self.storage,
                platform=platforms[p],
            )
            path = lay.party(p) / f"{c.session}-{p}.yaml"
            write_atomic(path, dump_session(private))
            sig = lay.party(p) / f"{c.session}-{p}.{p}.sig"
            self.step(
                f"{p} signs its private session",
                ["session", "sign", str(path), "--key", str(lay.key(p)), "-o", str(sig)],
            )
            self.step(
                f"{p} submits its private session", ["session", "submit", str(path), "-s", str(sig)]
            )

    # -- the phases --------------------------------------------------------------------------

    def run_confidential(self) -> None:
        c = self.config
        parties = " and ".join(c.parties)
        tasks = " and ".join(c.tasks)
        for p in c.parties:
            self.service(
                f"{c.session}-{p}",
                "upload",
                f"upload-{p}",
                machine=p,
                label=f"{p}'s uploader encrypts and pushes {p}'s data",
            )
        self.service(
            c.session,
            "fetch",
            "fetch",
            machine="cloud",
            label=f"cloud: fetch, verify, decrypt {parties}'s data into a protected volume",
        )
        self.service(
            c.session,
            "train",
            "train",
            machine="cloud",
            label=f"cloud: train {tasks} on the combined data",
        )
        self.service(
            c.session,
            "publish",
            "publish",
            machine="cloud",
            label="cloud: encrypt and push the model",
        )
        if c.receipts or c.release:
            self.keep_receipts()
        for p in c.parties:
            self.service(
                c.session,
                f"pull-{p}",
                f"pull-{p}",
                machine=p,
                label=f"{p} pulls and verifies the model into its protected volume",
            )
        for p in c.parties:
            self.service(
                c.session,
                f"run-{p}",
                f"run-{p}",
                machine=p,
                label=f"{p} runs the model on its held-out rows",
            )
        self._read_metrics_confidential()

    def receipt_file(self, party: str) -> Path:
        return self.layout.party(party) / f"{self.config.session}.receipt.json"

    def keep_receipts(self) -> None:
        """Each party pins the service's identity key (the operator prints it with `seml cas
        info`), fetches the run's receipt into its own folder and verifies it there, offline,
        against the session it signed and the manifest its own push recorded. With a release
        rule, a pull before the owners approved is refused, then each party approves."""
        lay, c = self.layout, self.config
        info = json.loads(
            self.step(
                "the operator prints the service's identity", ["cas", "info", "--json"]
            ).stdout
        )
        for p in c.parties:
            write_atomic(lay.party(p) / "cas-identity.pub", info["identity_key"] + "\n")
        for p in c.parties:
            receipt = self.receipt_file(p)
            self.step(
                f"{p} fetches the run's receipt",
                ["receipt", "get", c.session, "--key", str(lay.key(p)), "-o", str(receipt)],
            )
            result = self.step(
                f"{p} verifies the receipt offline (session, its own input)",
                [
                    "receipt",
                    "verify",
                    str(receipt),
                    "--cas-identity",
                    str(lay.party(p) / "cas-identity.pub"),
                    "--session",
                    str(lay.sessions / f"{c.session}.yaml"),
                    "--manifest",
                    f"{p}={lay.party_state(p) / 'sync-versions.json'}",
                ],
            )
            last = (result.stdout.strip().splitlines() or [""])[-1]
            self.receipt_checks.append((f"{p}'s receipt verifies offline", True, last))
        if not c.release:
            return
        first = c.parties[0]
        refused = self.service(
            c.session,
            f"pull-{first}",
            None,
            machine=first,
            label=f"{first} pulls before the owners approved: refused",
            check=False,
        )
        said = next((ln for ln in refused.stderr.splitlines() if "awaits approval" in ln), "")
        self.receipt_checks.append(
            (
                "the model waits for its owners",
                refused.returncode == 4 and bool(said),
                said.removeprefix("seml: error: ") or f"exit {refused.returncode}",
            )
        )
        for p in c.parties:
            out = self.step(
                f"{p} approves the model the receipt names",
                ["model", "approve", str(self.receipt_file(p)), "--key", str(lay.key(p))],
            )
        said = next((ln for ln in out.stdout.splitlines() if ln.startswith("release:")), "")
        self.receipt_checks.append(
            ("every owner approved: model released", "RELEASED" in said, said)
        )

    def _read_metrics_confidential(self) -> None:
        # The model runner hands each party the metrics of the model it ran (they travel with
        # the encrypted model); read the first party's copy.
        out = self.layout.predictions(self.config.parties[0])
        self.metrics = {
            task: json.loads((out / f"{task}.metrics.json").read_text())
            for task in self.config.tasks
        }

    def run_native(self) -> None:
        lay, c = self.layout, self.config
        native = lay.root / "native"
        store = remote(self.storage, "native")
        for p in c.parties:
            self.step(
                f"{p} copies its data (plain)",
                ["flow", "copy-in", str(lay.data(p)), remote(store, "datasets", p), *self.s3_args],
                phase=f"upload-{p}",
            )
        sources = [f"{p}={remote(store, 'datasets', p)}" for p in c.parties]
        self.step(
            "fetch (plain)",
            [
                "flow",
                "fetch",
                "--plain",
                str(native / "training" / "datasets"),
                *self.s3_args,
                *sources,
            ],
            phase="fetch",
        )
        spec_dir = native / "specs"
        spec_dir.mkdir(parents=True, exist_ok=True)
        spec_paths = []
        for task, text in self.specs().items():
            (spec_dir / f"{task}.yaml").write_text(text)
            spec_paths.append(str(spec_dir / f"{task}.yaml"))
        self.step(
            "train (plain)",
            [
                "flow",
                "train",
                "--data",
                str(native / "training" / "datasets"),
                "--out",
                str(native / "training" / "model"),
                *spec_paths,
            ],
            phase="train",
        )
        self.step(
            "publish (plain)",
            [
                "flow",
                "copy-in",
                str(native / "training" / "model"),
                remote(store, "model"),
                *self.s3_args,
            ],
            phase="publish",
        )
        for p in c.parties:
            self.step(
                f"{p} pulls the model (plain)",
                [
                    "flow",
                    "copy-out",
                    remote(store, "model"),
                    str(native / p / "model"),
                    *self.s3_args,
                ],
                phase=f"pull-{p}",
            )
        for p in c.parties:
            self.step(
                f"{p} runs the model (plain)",
                [
                    "flow",
                    "predict",
                    "--models",
                    str(native / p / "model"),
                    "--input",
                    str(lay.holdout(p)),
                    "--out",
                    str(native / p / "predictions"),
                ],
                phase=f"run-{p}",
            )
        out = native / c.parties[0] / "predictions"
        self.metrics = {
            task: json.loads((out / f"{task}.metrics.json").read_text()) for task in c.tasks
        }

    def predictions_dir(self, party: str) -> Path:
        if self.mode == "native":
            return self.layout.root / "native" / party / "predictions"
        return self.layout.predictions(party)

    def close(self) -> None:
        if self.cas is not None:
            self.cas.stop()
            self.cas = None
