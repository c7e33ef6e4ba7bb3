"""benchmarks/flow_bench.py's per-phase profile: confidential against native, per `seml run`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from seml.bench import Row, total_row

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "flow_bench.py"


def _flow_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("flow_bench_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _run(mode: str, task: str, rep: int, cpu: dict[str, float]) -> list[Row]:
    phases = [Row(mode, task, "G", 15000, rep, p, 2 * c, c, 50.0, 100.0) for p, c in cpu.items()]
    return [*phases, total_row(phases)]


def test_extra_cpu_is_split_by_phase_group_and_seml_run_start() -> None:
    native = {"upload-alice": 0.5, "upload-bob": 0.5, "train": 7.0, "run-alice": 5.0}
    conf = {"upload-alice": 1.2, "upload-bob": 1.3, "train": 7.4, "run-alice": 5.3}
    rows = [
        *(r for rep in (1, 2) for r in _run("native", "classification", rep, native)),
        *(r for rep in (1, 2) for r in _run("confidential", "classification", rep, conf)),
    ]
    lines = _flow_bench().phase_overhead(rows, "G")
    by_group = {line.split()[0]: line.split() for line in lines[2:]}
    # upload: 2 parties, 2 starts; CPU 1.0 -> 2.5, so 1.5 s extra, 0.75 s per start
    assert by_group["upload"][5:8] == ["1.00", "2.50", "1.50"]
    assert by_group["upload"][9:] == ["2", "0.75"]
    assert by_group["train"][9:] == ["1", "0.40"]
    # all: 13.0 -> 15.2 CPU s over 4 starts
    assert by_group["all"][5:8] == ["13.00", "15.20", "2.20"]
    assert by_group["all"][9:] == ["4", "0.55"]


def test_no_table_without_both_modes() -> None:
    rows = _run("native", "classification", 1, {"train": 7.0})
    assert _flow_bench().phase_overhead(rows, "G") == []
