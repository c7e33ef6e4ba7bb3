"""Reading a folder of CSV and Parquet datasets into one table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from seml.errors import UsageError
from seml.ml import dataset_files, load_datasets, read_table


def _frame(start: int, rows: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {"a": [float(i) for i in range(start, start + rows)], "b": list(range(rows)), "y": "k"}
    )


def test_reads_csv_and_parquet_recursively_in_relative_path_order(tmp_path: Path) -> None:
    (tmp_path / "z").mkdir()
    (tmp_path / "a" / "deep").mkdir(parents=True)
    _frame(0).to_csv(tmp_path / "z" / "first.csv", index=False)
    _frame(10).to_parquet(tmp_path / "a" / "deep" / "x.parquet")
    _frame(20)[["y", "b", "a"]].to_csv(tmp_path / "m.csv", index=False)  # column order differs
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / ".hidden.csv").write_text("not,a,dataset\n")
    (tmp_path / ".volume").mkdir()
    _frame(99).to_csv(tmp_path / ".volume" / "meta.csv", index=False)

    files = dataset_files(tmp_path)
    assert [f.relative_to(tmp_path).as_posix() for f in files] == [
        "a/deep/x.parquet",
        "m.csv",
        "z/first.csv",
    ]
    combined = load_datasets(tmp_path)
    expected = pd.concat([_frame(10), _frame(20), _frame(0)], ignore_index=True)
    pd.testing.assert_frame_equal(combined, expected)


def test_mismatched_columns_name_the_file(tmp_path: Path) -> None:
    _frame(0).to_csv(tmp_path / "a.csv", index=False)
    _frame(0).rename(columns={"b": "c"}).to_csv(tmp_path / "b.csv", index=False)
    with pytest.raises(UsageError, match=r"b\.csv has different columns.*missing \['b'\].*\['c'\]"):
        load_datasets(tmp_path)


def test_empty_or_missing_folders_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no CSV or Parquet files"):
        load_datasets(tmp_path)
    with pytest.raises(UsageError, match="does not exist"):
        load_datasets(tmp_path / "nope")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(UsageError, match=r"empty\.csv: the file is empty"):
        load_datasets(tmp_path)
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(UsageError, match=r"bad\.parquet: cannot read as parquet"):
        read_table(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text("a,a\n1,2\n")
    (tmp_path / "empty.csv").unlink()
    with pytest.raises(UsageError, match="duplicate column"):
        read_table(dup)
    with pytest.raises(UsageError, match="not a CSV or Parquet"):
        read_table(tmp_path / "x.txt")


def test_header_only_files_give_no_rows(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text("a,b\n")
    with pytest.raises(UsageError, match="hold no rows"):
        load_datasets(tmp_path)
