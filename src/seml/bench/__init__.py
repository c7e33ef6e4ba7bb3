"""`seml bench`: the paper's evaluation (section 7) reproduced for this implementation."""

from seml.bench._plots import plot_phases, plot_resources
from seml.bench._report import Machine, machine, render_report
from seml.bench._results import (
    COLUMNS,
    Row,
    ScenarioStats,
    Target,
    phase_means,
    ratios,
    read_csv,
    scenario_stats,
    targets,
    total_row,
    write_csv,
)
from seml.bench._run import BenchOptions, BenchResult, RunDone, run_bench
from seml.bench._scenarios import DATASETS, Dataset, Scenario, dataset_for_rows, scenarios
from seml.bench._setup import FastAgreement, current_measurement

__all__ = [
    "COLUMNS",
    "DATASETS",
    "BenchOptions",
    "BenchResult",
    "Dataset",
    "FastAgreement",
    "Machine",
    "Row",
    "RunDone",
    "Scenario",
    "ScenarioStats",
    "Target",
    "current_measurement",
    "dataset_for_rows",
    "machine",
    "phase_means",
    "plot_phases",
    "plot_resources",
    "ratios",
    "read_csv",
    "render_report",
    "run_bench",
    "scenario_stats",
    "scenarios",
    "targets",
    "total_row",
    "write_csv",
]
