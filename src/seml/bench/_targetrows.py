"""The performance targets of `make bench`: one row per target, seml beside its peer.

Every benchmark under `benchmarks/` measures seml and its peer (rclone, plain disk, a bare
script, native mode) in the same run. For each target it checks it calls `record_target`,
which appends the row as one JSON line to the file named by `$SEML_BENCH_TARGETS` (nothing
when unset: a benchmark run by hand only prints). `benchmarks/run_all.py` (`make bench`) sets
the variable, runs every benchmark and prints `summary_table` of the rows: every target of
issue 16 in its order, with a row saying so for a target no benchmark reported.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from seml.bench._report import Table
from seml.errors import UsageError

__all__ = [
    "ISSUE_TARGETS",
    "TARGETS_ENV",
    "TargetRow",
    "plain_text",
    "read_target_rows",
    "record_target",
    "target_rows_table",
]

TARGETS_ENV = "SEML_BENCH_TARGETS"

# The targets of issue 16, in its order: key -> (what, the benchmark that measures it).
ISSUE_TARGETS: dict[str, tuple[str, str]] = {
    "crypt-decrypt": ("crypt decrypt 1 GiB vs rclone", "crypt_bench.py"),
    "crypt-encrypt": ("crypt encrypt 1 GiB vs rclone", "crypt_bench.py"),
    "pull": ("pull 1 GiB vs rclone (file://, SeaweedFS; every tree shape)", "sync_bench.py"),
    "push": ("push 1 GiB vs rclone (every tree shape)", "sync_bench.py"),
    "volume-workspace": ("volume read+write vs plain disk (workspace mode)", "runtime_bench.py"),
    "volume-fuse": ("volume via FUSE vs plain disk", "runtime_bench.py"),
    "run-fixed": ("`seml run` fixed cost minus the bare command's", "runtime_bench.py"),
    "model-runner": ("model runner vs a bare scikit-learn script", "model_bench.py"),
    "flow-G": ("whole flow confidential/native, G (15,000 rows)", "flow_bench.py"),
    "flow-L": ("whole flow confidential/native, L (1.5 M rows)", "flow_bench.py"),
    "memory": ("memory, any transfer of a 1 GiB file", "crypt_bench.py, sync_bench.py"),
}

Op = Literal["<=", ">="]


@dataclass(frozen=True)
class TargetRow:
    """One measured target: `value` (a ratio, a percentage, milliseconds: `unit` says) against
    `limit`; `seml` and `peer` are the two figures it comes from, as the reader should see them
    (e.g. "4.21 s", "3.90 s (rclone)")."""

    key: str  # an ISSUE_TARGETS key, or the benchmark's own for a target of its own
    what: str  # e.g. "pull 1 GiB, file://, one large file"
    seml: str
    peer: str
    value: float
    op: Op
    limit: float
    unit: str  # "x", "%", " ms", " MB"
    bench: str
    note: str = ""

    @property
    def met(self) -> bool:
        return self.value <= self.limit if self.op == "<=" else self.value >= self.limit

    @property
    def status(self) -> str:
        return "met" if self.met else "MISSED"

    def figure(self) -> str:
        return f"{self.value:.2f}{self.unit}"

    def target(self) -> str:
        return f"{self.op} {self.limit:g}{self.unit}"


def record_target(row: TargetRow, path: Path | None = None) -> None:
    """Append `row` to `path` (default: the file `$SEML_BENCH_TARGETS` names; none: no-op)."""
    if path is None:
        named = os.environ.get(TARGETS_ENV)
        if not named:
            return
        path = Path(named)
    line = json.dumps(asdict(row), sort_keys=True) + "\n"
    # One write of one line in append mode: rows of benchmarks never interleave.
    with path.open("a", encoding="utf-8") as f:
        f.write(line)


def read_target_rows(path: Path) -> list[TargetRow]:
    """The rows `record_target` wrote to `path` (none if it does not exist)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    rows = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            fields = json.loads(line)
            fields["value"], fields["limit"] = float(fields["value"]), float(fields["limit"])
            row = TargetRow(**fields)
        except (ValueError, TypeError, KeyError) as e:
            raise UsageError(f"{path}:{number}: not a target row ({e})") from e
        if row.op not in ("<=", ">="):
            raise UsageError(f"{path}:{number}: comparison {row.op!r} is neither <= nor >=")
        rows.append(row)
    return rows


def target_rows_table(rows: Sequence[TargetRow]) -> Table:
    """Every target of issue 16 in its order (its rows, or one saying none reported it), then
    the benchmarks' targets of their own."""
    out: list[tuple[str, ...]] = []
    for key, (what, bench) in ISSUE_TARGETS.items():
        mine = [r for r in rows if r.key == key]
        out += [_cells(r) for r in mine] or [
            (what, "-", "-", "-", "-", "NOT REPORTED", f"{bench} reported no row")
        ]
    out += [_cells(r) for r in rows if r.key not in ISSUE_TARGETS]
    return Table(
        headers=("target", "seml", "peer", "figure", "target", "status", "note"),
        rows=out,
        right=frozenset({1, 2, 3}),
        strong=frozenset({5}),
    )


def _cells(r: TargetRow) -> tuple[str, ...]:
    return (r.what, r.seml, r.peer, r.figure(), r.target(), r.status, r.note)


def plain_text(table: Table) -> list[str]:
    """`table` as aligned plain-text lines (figures right-aligned): the same on a terminal and
    in a log, one line per row whatever the width."""
    widths = [
        max(len(cell) for cell in column) for column in zip(table.headers, *table.rows, strict=True)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.rjust(w) if i in table.right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(table.headers), "  ".join("-" * w for w in widths), *map(line, table.rows)]
