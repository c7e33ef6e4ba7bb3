"""`make bench`'s table: target rows recorded by the benchmarks, read back and printed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from seml.bench import (
    ISSUE_TARGETS,
    TARGETS_ENV,
    TargetRow,
    plain_text,
    read_target_rows,
    record_target,
    target_rows_table,
)
from seml.errors import UsageError

RUN_ALL = Path(__file__).resolve().parents[2] / "benchmarks" / "run_all.py"


def _row(key: str, value: float, op: str = "<=", limit: float = 0.8, **kw: str) -> TargetRow:
    fields = {
        "what": f"{key} what",
        "seml": "1.00 s",
        "peer": "2.00 s (rclone)",
        "unit": "x",
        "bench": "crypt_bench.py",
    }
    fields.update(kw)
    return TargetRow(key=key, value=value, op=op, limit=limit, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "op", "limit", "met"),
    [(0.5, "<=", 0.8, True), (0.8, "<=", 0.8, True), (0.81, "<=", 0.8, False),
     (85.0, ">=", 80.0, True), (79.9, ">=", 80.0, False)],
)  # fmt: skip
def test_met_follows_the_comparison(value: float, op: str, limit: float, met: bool) -> None:
    row = _row("crypt-decrypt", value, op, limit)
    assert row.met is met
    assert row.status == ("met" if met else "MISSED")


def test_rows_round_trip_through_the_file_the_variable_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "targets.jsonl"
    monkeypatch.setenv(TARGETS_ENV, str(path))
    rows = [_row("crypt-decrypt", 0.7), _row("volume-fuse", 41.0, ">=", 50.0, unit="%")]
    for row in rows:
        record_target(row)
    assert read_target_rows(path) == rows


def test_without_the_variable_nothing_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(TARGETS_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    record_target(_row("crypt-decrypt", 0.7))
    assert list(tmp_path.iterdir()) == []
    assert read_target_rows(tmp_path / "absent.jsonl") == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "not a target row"),
        (json.dumps({"key": "x"}), "not a target row"),
        (json.dumps({**_row("x", 1.0).__dict__, "op": "<"}), "neither <= nor >="),
        (json.dumps({**_row("x", 1.0).__dict__, "value": "fast"}), "not a target row"),
    ],
)
def test_a_foreign_line_is_refused_with_its_line_number(
    tmp_path: Path, line: str, message: str
) -> None:
    path = tmp_path / "targets.jsonl"
    path.write_text(json.dumps(_row("crypt-decrypt", 0.7).__dict__) + "\n" + line + "\n")
    with pytest.raises(UsageError, match=rf"targets.jsonl:2: .*{message}"):
        read_target_rows(path)


def test_table_lists_every_issue_target_in_order_and_says_which_none_reported() -> None:
    rows = [
        _row("memory", 120.0, limit=180.0, unit=" MB"),
        _row("crypt-decrypt", 0.91),
        _row("pull", 0.75, what="pull, file://, large"),
        _row("pull", 0.85, what="pull, SeaweedFS, large"),
        _row("own-target", 3.0, limit=5.0),
    ]
    table = target_rows_table(rows)
    whats = [r[0] for r in table.rows]
    assert whats[0] == "crypt-decrypt what"
    assert whats[-1] == "own-target what"  # a benchmark's own target comes after the issue's
    assert whats.index("pull, file://, large") + 1 == whats.index("pull, SeaweedFS, large")
    status = {r[0]: r[5] for r in table.rows}
    assert status["crypt-decrypt what"] == "MISSED"
    assert status["pull, file://, large"] == "met"
    assert status["pull, SeaweedFS, large"] == "MISSED"
    assert status[ISSUE_TARGETS["flow-L"][0]] == "NOT REPORTED"
    assert len(table.rows) == len(ISSUE_TARGETS) - 3 + len(rows)
    decrypt = next(r for r in table.rows if r[0] == "crypt-decrypt what")
    assert decrypt[1:5] == ("1.00 s", "2.00 s (rclone)", "0.91x", "<= 0.8x")


def test_plain_text_keeps_each_row_on_one_aligned_line() -> None:
    table = target_rows_table([_row("crypt-decrypt", 0.91, note="a " * 60)])
    lines = plain_text(table)
    assert len(lines) == 2 + len(table.rows)
    assert lines[0].startswith("target") and set(lines[1]) <= {"-", " "}
    status_col = lines[0].index("status")
    assert all(line[status_col:].split()[0] in {"met", "MISSED", "NOT"} for line in lines[2:])


_RECORDS = """\
from seml.bench import TargetRow, record_target
record_target(TargetRow(key="model-runner", what="model runner vs bare", seml="1.10 s",
    peer="1.00 s (bare)", value=1.1, op="<=", limit=1.3, unit="x", bench="a_bench.py"))
print("PASS  model runner 1.10x")
"""


def test_run_all_runs_every_benchmark_and_prints_one_table(tmp_path: Path) -> None:
    (tmp_path / "a_bench.py").write_text(_RECORDS)
    (tmp_path / "b_bench.py").write_text("print('push 0.72x <= 0.7 MISS')\n")
    (tmp_path / "c_bench.py").write_text("raise SystemExit(3)\n")
    (tmp_path / "helper.py").write_text("raise SystemExit('not a benchmark: never run')\n")
    result = subprocess.run(
        [sys.executable, str(RUN_ALL), "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 1, out + result.stderr  # c failed, issue targets unreported
    assert [ln for ln in out.splitlines() if ln.startswith("== ") and "_bench" in ln] == [
        "== a_bench.py",
        "== b_bench.py",
        "== c_bench.py",
    ]
    table = out[out.index("== targets") :]
    model = next(ln for ln in table.splitlines() if ln.startswith("model runner vs bare"))
    assert model.split()[4:] == ["1.10", "s", "1.00", "s", "(bare)", "1.10x", "<=", "1.3x", "met"]
    assert "NOT REPORTED" in table
    # b records no rows: its own verdict line is shown instead.
    assert "b_bench.py (its own verdict lines; it records no rows):" in table
    assert "  push 0.72x <= 0.7 MISS" in table
    assert "failed: c_bench.py (exit 3)" in table
    assert "not a benchmark" not in out
