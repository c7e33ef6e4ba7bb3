"""`seml bench` through the real entry point: real flows, real CAS, real files."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seml.bench import FIGURES, INFO_FILE, REPORT_FILE, RESULTS_FILE
from seml.cli import main

if TYPE_CHECKING:
    from _seaweedfs import SeaweedFS

RESULT_FILES = sorted([INFO_FILE, *FIGURES, REPORT_FILE, RESULTS_FILE])
PHASES = {
    "upload-alice",
    "upload-bob",
    "fetch",
    "train",
    "publish",
    "pull-alice",
    "pull-bob",
    "run-alice",
    "run-bob",
    "total",
}
COLUMNS = {
    "mode",
    "task",
    "dataset",
    "repetition",
    "phase",
    "seconds",
    "cpu_percent",
    "peak_rss_mb",
}


def check_results(out: Path, runs: set[tuple[str, str, str, str]]) -> list[dict[str, str]]:
    with (out / "results.csv").open(newline="") as f:
        reader = csv.DictReader(f)
        assert set(reader.fieldnames or ()) >= COLUMNS
        rows = list(reader)
    by_run: dict[tuple[str, str, str, str], dict[str, dict[str, str]]] = defaultdict(dict)
    for r in rows:
        by_run[(r["mode"], r["task"], r["dataset"], r["repetition"])][r["phase"]] = r
    assert set(by_run) == runs
    for phases in by_run.values():
        assert set(phases) == PHASES
        parts = [float(r["seconds"]) for p, r in phases.items() if p != "total"]
        assert all(s > 0 for s in parts)
        assert float(phases["total"]["seconds"]) == pytest.approx(sum(parts), abs=1e-3)
        peaks = [float(r["peak_rss_mb"]) for p, r in phases.items() if p != "total"]
        assert float(phases["total"]["peak_rss_mb"]) == pytest.approx(max(peaks), abs=1e-3)
        assert min(peaks) > 5  # every phase is a real process tree with a Python in it
    return rows


def check_images(out: Path) -> None:
    import matplotlib.image

    for name in ("phases.png", "resources.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        height, width = matplotlib.image.imread(out / name).shape[:2]
        assert height > 100 and width > 100


def check_printed_tables(out: str, status: str) -> None:
    """Tables rendered as text, never as Markdown; a row is one line even far past 80
    columns (stdout is not a terminal under pytest)."""
    assert "**" not in out and "|---" not in out
    target = [line for line in out.splitlines() if "whole flow, conf. / native, G" in line]
    assert len(target) == 1, out
    assert f"| {status} " in target[0] and "| 5.8x (237 s / 41 s) " in target[0]
    assert target[0].endswith("|")  # the whole row on its line
    assert max(len(line) for line in out.splitlines()) > 80
    assert all(line == line.rstrip() for line in out.splitlines())


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.integration
def test_bench_both_modes_on_file_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    code = main(
        ["bench", "-n", "1", "--dataset", "P", "--task", "classification", "--out", str(out)]
    )
    printed = capsys.readouterr()
    assert code == 0, printed.err
    assert "SIMULATED" in printed.err
    assert "2 runs (1 each on P)" in printed.err
    assert "[2/2] confidential classification P rep 1" in printed.err  # plain lines: no TTY
    check_printed_tables(printed.out, "NOT RUN")
    check_results(
        out,
        {
            ("native", "classification", "P", "1"),
            ("confidential", "classification", "P", "1"),
        },
    )
    check_images(out)
    report = (out / "report.md").read_text()
    assert "| classification | P | " in report and "x |" in report  # the ratio
    assert "whole flow, conf. / native, G" in report and "NOT RUN" in report
    assert "SIMULATED" in report and "cores" in report
    assert "removed after the run" in report
    assert "finished: 20" in report  # a date, not "not finished"
    assert (
        sorted(p.name for p in out.iterdir()) == RESULT_FILES
    )  # the work folder (data, keys, volumes) is gone

    # The report again from the same results: same text, through the real entry point.
    first = report
    (out / "report.md").unlink()
    (out / "phases.png").unlink()
    assert main(["bench", "report", str(out)]) == 0
    printed = capsys.readouterr()
    check_printed_tables(printed.out, "NOT RUN")
    assert "rebuilt" in printed.err
    assert (out / "report.md").read_text() == first
    check_images(out)


@pytest.mark.slow
@pytest.mark.long
@pytest.mark.integration
def test_bench_on_s3(tmp_path: Path, seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in seaweedfs.env.items():
        monkeypatch.setenv(name, value)
    bucket = seaweedfs.create_bucket("bench")
    out = tmp_path / "results"
    code = main(
        [
            "bench",
            *("-n", "1", "--mode", "confidential", "--task", "regression", "--dataset", "P"),
            # the endpoint comes from $SEML_S3_ENDPOINT (the flow's steps never see SEML_*)
            *("--storage", f"s3://{bucket}/runs"),
            *("--out", str(out)),
        ]
    )
    assert code == 0
    check_results(out, {("confidential", "regression", "P", "1")})
    keys = [o["Key"] for o in seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]]
    assert keys and all(k.startswith("runs/") for k in keys)
    assert "s3://bench/runs" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--dataset", "X"], "--dataset 'X'"),
        (["--scale", "1000"], "multiple of 150"),
        (["--mode", "tee"], "--mode 'tee'"),
    ],
)
def test_bad_options_exit_non_zero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    assert main(["bench", *args, "--out", str(tmp_path / "r")]) != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_bench_report_through_the_entry_point(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seml.bench import Row, total_row, write_csv

    out = tmp_path / "results"
    out.mkdir()
    rows: list[Row] = []
    for mode, seconds in (("native", 1.0), ("confidential", 1.1)):
        phases = [
            Row(mode, "regression", "G", 15_000, 1, p, seconds, 0.5, 50.0, 80.0)
            for p in sorted(PHASES - {"total"})
        ]
        rows += [*phases, total_row(phases)]
    write_csv(out / "results.csv", rows)
    assert main(["bench", "report", str(out)]) == 0
    printed = capsys.readouterr()
    check_printed_tables(printed.out, "PASS")
    assert "| whole flow, conf. / native, G     |   1.100x | <= 1.2x | PASS " in printed.out
    check_images(out)
    assert "| whole flow, conf. / native, G | 1.100x | <= 1.2x | **PASS** |" in (
        (out / "report.md").read_text()
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["bench", "report", "{tmp}/absent"], "is not a folder"),
        (["bench", "report", "{tmp}"], "has no results.csv"),
        (
            ["bench", "-n", "3", "report", "{tmp}"],
            "--repetitions is an option of `seml bench`, not of `seml bench report`",
        ),
    ],
)
def test_bench_report_refusals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code = main([a.replace("{tmp}", str(tmp_path)) for a in args])
    assert code == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_refuses_a_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["bench", "-n", "1", "--out", str(tmp_path)]) != 0
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
