"""`seml bench` through the real entry point: real flows, real CAS, real files."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from seml.cli import main

if TYPE_CHECKING:
    from _seaweedfs import SeaweedFS

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


@pytest.mark.slow
@pytest.mark.integration
def test_bench_both_modes_on_file_storage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    code = main(
        ["bench", "-n", "1", "--dataset", "P", "--task", "classification", "--out", str(out)]
    )
    err = capsys.readouterr().err
    assert code == 0, err
    assert "SIMULATED" in err
    assert "[2/2] confidential classification P rep 1" in err  # plain progress lines: no TTY
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
    assert "whole flow, confidential / native, G" in report and "NOT RUN" in report
    assert "SIMULATED" in report and "cores" in report
    assert sorted(p.name for p in out.iterdir()) == [
        "phases.png",
        "report.md",
        "resources.png",
        "results.csv",
    ]  # the work folder (data, keys, volumes) is gone


@pytest.mark.slow
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


def test_refuses_a_non_empty_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["bench", "-n", "1", "--out", str(tmp_path)]) != 0
    assert "is not empty" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
