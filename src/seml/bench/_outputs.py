"""A results folder: `results.csv` and `bench.json` in, `phases.png`, `resources.png` and
`report.md` out. Written while a bench runs, and again by `seml bench report DIR`."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from seml._fs import write_atomic
from seml.bench._plots import plot_phases, plot_resources
from seml.bench._report import BenchInfo, Machine, render_report
from seml.bench._results import Row, read_csv
from seml.bench._scenarios import LARGE_ROWS
from seml.errors import UsageError

__all__ = [
    "FIGURES",
    "INFO_FILE",
    "REPORT_FILE",
    "RESULTS_FILE",
    "read_info",
    "rebuild",
    "write_info",
    "write_outputs",
]

RESULTS_FILE = "results.csv"
INFO_FILE = "bench.json"
REPORT_FILE = "report.md"
FIGURES = ("phases.png", "resources.png")


def write_info(out: Path, info: BenchInfo) -> None:
    text = json.dumps(asdict(info), indent=2) + "\n"
    write_atomic(out / INFO_FILE, text)


def _info_from(doc: Any, path: Path) -> BenchInfo:
    try:
        host = doc["host"]
        return BenchInfo(
            started=str(doc["started"]),
            repetitions=int(doc["repetitions"]),
            large_repetitions=int(doc["large_repetitions"]),
            storage=str(doc["storage"]),
            host=Machine(**host) if host is not None else None,
            finished=None if doc.get("finished") is None else str(doc["finished"]),
            failures=tuple(str(f) for f in doc.get("failures", ())),
            load=tuple(float(x) for x in doc.get("load", ())),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise UsageError(f"{path}: not a bench info file ({e!r})") from e


def _guessed_info(rows: Sequence[Row]) -> BenchInfo:
    """For a folder without bench.json: what the rows tell (the rest is 'not recorded')."""

    def most(large: bool) -> int:
        return max((r.repetition for r in rows if (r.rows >= LARGE_ROWS) == large), default=0)

    return BenchInfo(
        started="not recorded",
        repetitions=most(False),
        large_repetitions=most(True),
        storage="not recorded",
        host=None,
        finished="not recorded",
    )


def read_info(out: Path, rows: Sequence[Row]) -> BenchInfo:
    path = out / INFO_FILE
    if not path.exists():
        return _guessed_info(rows)
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise UsageError(f"cannot read {path}: {e.strerror or e}") from e
    except ValueError as e:
        raise UsageError(f"{path}: not JSON: {e}") from e
    return _info_from(doc, path)


def write_outputs(out: Path, rows: Sequence[Row], info: BenchInfo) -> None:
    """The figures (when there are runs) and the report, each written atomically."""
    if rows:
        plot_phases(rows, out / FIGURES[0])
        plot_resources(rows, out / FIGURES[1])
    text = render_report(rows, info)
    write_atomic(out / REPORT_FILE, text)


def rebuild(out: Path) -> list[Row]:
    """`seml bench report DIR`: the figures and report of `out` again, from its results.csv
    (and bench.json when present). Returns the rows."""
    results = out / RESULTS_FILE
    if not out.is_dir():
        raise UsageError(f"{out} is not a folder: give a results folder of `seml bench`")
    if not results.is_file():
        raise UsageError(f"{out} has no {RESULTS_FILE}: give a results folder of `seml bench`")
    rows = read_csv(results)
    if not rows:
        raise UsageError(f"{results} has no runs: nothing to report")
    write_outputs(out, rows, read_info(out, rows))
    return rows
