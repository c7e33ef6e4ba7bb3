"""`seml bench`: run the scenarios, repetition by repetition, and write the results folder."""

from __future__ import annotations

import os
import secrets
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from seml.bench._outputs import RESULTS_FILE, write_info, write_outputs
from seml.bench._report import BenchInfo, machine
from seml.bench._results import Row, read_csv, total_row, write_csv
from seml.bench._scenarios import Dataset, Scenario
from seml.bench._setup import FastAgreement, current_measurement
from seml.cas import LocalCas
from seml.errors import SemlError, UsageError
from seml.flow import Flow, FlowConfig, remote
from seml.flow._runner import environment

__all__ = ["BenchOptions", "BenchResult", "RunDone", "run_bench"]


@dataclass(frozen=True)
class BenchOptions:
    out: Path
    scenarios: Sequence[Scenario]
    repetitions: int = 10
    large_repetitions: int = 2  # for the large datasets (at most `repetitions`)
    storage: str | None = None  # default: file://OUT/work/storage
    s3_endpoint: str | None = None
    keep_work: bool = False

    def repetitions_of(self, scenario: Scenario) -> int:
        if scenario.dataset.large:
            return min(self.repetitions, self.large_repetitions)
        return self.repetitions

    def runs(self) -> list[tuple[int, Scenario]]:
        """(repetition, scenario) in run order: repetition 1 of each scenario, then 2, ... so
        machine noise spreads over all of them; a large scenario drops out after its own
        repetitions."""
        most = max((self.repetitions_of(s) for s in self.scenarios), default=0)
        return [
            (rep, s)
            for rep in range(1, most + 1)
            for s in self.scenarios
            if rep <= self.repetitions_of(s)
        ]


@dataclass(frozen=True)
class RunDone:
    """One run finished (ok or not): for progress display."""

    index: int
    total: int
    scenario: Scenario
    repetition: int
    seconds: float
    error: str | None = None


@dataclass
class BenchResult:
    out: Path
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    load: list[float] = field(default_factory=list)  # 1-minute load average after each run


def _rows(flow: Flow, scenario: Scenario, repetition: int) -> list[Row]:
    phases = [
        Row(
            mode=scenario.mode,
            task=scenario.task,
            dataset=scenario.dataset.label,
            rows=scenario.dataset.rows,
            repetition=repetition,
            phase=p.phase,
            seconds=p.step.seconds,
            cpu_seconds=p.step.cpu_seconds,
            cpu_percent=p.step.cpu_percent,
            peak_rss_mb=p.step.peak_rss_mb,
        )
        for p in flow.phases
    ]
    return [*phases, total_row(phases)]


class _Bench:
    def __init__(self, options: BenchOptions, on_run: Callable[[RunDone], None]) -> None:
        self.o = options
        self.on_run = on_run
        self.work = options.out / "work"
        self.storage = options.storage or f"file://{self.work / 'storage'}"
        self.token = secrets.token_hex(3)
        self.configs: dict[str, FlowConfig] = {}
        self.cas: LocalCas | None = None
        self.agreement: FastAgreement | None = None
        self.count = 0

    def config(self, dataset: Dataset) -> FlowConfig:
        """One work folder per dataset: its parties' data is prepared once (not measured)."""
        if dataset.label not in self.configs:
            config = FlowConfig(
                workdir=self.work / dataset.label,
                dataset=dataset.flow_dataset,
                factor=dataset.factor,
                storage=self.storage,
                s3_endpoint=self.o.s3_endpoint,
            )
            Flow(config).prepare_data()
            self.configs[dataset.label] = config
        return self.configs[dataset.label]

    def start(self) -> None:
        self.cas = LocalCas(self.work / "cas", env=environment({}))
        self.cas.start()
        self.agreement = FastAgreement(self.cas.url, self.cas.fingerprint)

    def stop(self) -> None:
        if self.agreement is not None:
            self.agreement.close()
        if self.cas is not None:
            self.cas.stop()

    def flow(self, scenario: Scenario) -> Flow:
        """A new flow for one run: its own storage prefix and session (hence new volumes)."""
        self.count += 1
        name = f"b{self.token}-{self.count:04d}"
        config = replace(
            self.config(scenario.dataset),
            tasks=(scenario.task,),
            storage=remote(self.storage, name),
            session=name,
        )
        flow = Flow(config, "confidential" if scenario.mode == "confidential" else "native")
        flow.cas = self.cas
        # Fresh local state: an earlier run's sync state or native copies must not make this
        # one incremental.
        shutil.rmtree(flow.layout.root / "native", ignore_errors=True)
        for p in config.parties:
            shutil.rmtree(flow.layout.party_state(p), ignore_errors=True)
            shutil.rmtree(flow.layout.predictions(p), ignore_errors=True)
            # Emptied, not gone: it is the folder this party's machine gives its services.
            flow.layout.predictions(p).mkdir(parents=True)
        return flow

    def cleanup(self, flow: Flow) -> None:
        """Drop what a finished run left (its volumes and, on file://, its objects)."""
        name = flow.config.session
        lay = flow.layout
        for volumes in [lay.cloud_volumes, *(lay.party_volumes(p) for p in lay.parties)]:
            shutil.rmtree(volumes / name, ignore_errors=True)
        if flow.storage.startswith("file://"):
            shutil.rmtree(flow.storage.removeprefix("file://"), ignore_errors=True)

    def run_once(self, scenario: Scenario, repetition: int) -> list[Row]:
        if self.agreement is None:
            raise UsageError("the benchmark was not started")
        flow = self.flow(scenario)
        try:
            if flow.mode == "confidential":
                self.agreement.agree(flow, current_measurement())
                flow.run_confidential()
            else:
                flow.run_native()
            return _rows(flow, scenario, repetition)
        finally:
            self.cleanup(flow)

    def run(self, result: BenchResult, info: BenchInfo) -> None:
        runs = self.o.runs()
        for dataset in dict.fromkeys(s.dataset for s in self.o.scenarios):
            self.config(dataset)
        self.start()
        try:
            for index, (rep, scenario) in enumerate(runs, 1):
                started = time.perf_counter()
                error = None
                try:
                    result.rows += self.run_once(scenario, rep)
                except SemlError as e:
                    error = str(e).splitlines()[0]
                    result.failures.append(f"{scenario.name} repetition {rep}: {e}")
                result.load.append(os.getloadavg()[0])
                write_csv(self.o.out / RESULTS_FILE, result.rows)
                write_info(self.o.out, _info(info, result))
                self.on_run(
                    RunDone(index, len(runs), scenario, rep, time.perf_counter() - started, error)
                )
        finally:
            self.stop()


def _storage_words(options: BenchOptions, storage: str) -> str:
    """The report's storage line: never a folder that is gone when the report is read."""
    if options.storage is not None:
        return f"`{storage}` (each run under its own prefix)"
    where = "kept in `work/storage`" if options.keep_work else "removed after the run"
    return f"a local folder (file://) in the results folder's work/ ({where})"


def run_bench(options: BenchOptions, on_run: Callable[[RunDone], None]) -> BenchResult:
    """Run every scenario its number of repetitions (`BenchOptions.runs`) and write results.csv
    (after every run), bench.json, phases.png, resources.png and report.md to `options.out`."""
    if options.repetitions < 1 or options.large_repetitions < 1:
        raise UsageError(
            f"--repetitions {options.repetitions} / --large-repetitions "
            f"{options.large_repetitions}: give at least 1"
        )
    if not options.scenarios:
        raise UsageError("no scenario left after the filters")
    out = options.out
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"--out {out} is not empty: give a new or empty folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"cannot create {out}: {e.strerror or e}") from e
    result = BenchResult(out)
    bench = _Bench(options, on_run)
    info = BenchInfo(
        started=_now(),
        repetitions=options.repetitions,
        large_repetitions=options.large_repetitions,
        storage=_storage_words(options, bench.storage),
        host=machine(),
    )
    write_info(out, info)
    try:
        bench.run(result, info)
    finally:
        if not options.keep_work:
            shutil.rmtree(bench.work, ignore_errors=True)
    info = replace(_info(info, result), finished=_now())
    write_info(out, info)
    # From the file, not the rows in memory: the report is exactly what `seml bench report`
    # makes of this folder (the CSV keeps 4 decimals).
    write_outputs(out, read_csv(out / RESULTS_FILE) if result.rows else [], info)
    return result


def _info(info: BenchInfo, result: BenchResult) -> BenchInfo:
    return replace(info, failures=tuple(result.failures), load=tuple(result.load))


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z")
