"""Reading datasets: every CSV and Parquet file of a folder, combined into one table."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING

from seml.errors import PolicyError, SemlError, UsageError
from seml.ml._archive import format_size
from seml.ml._parquet import TableLimits, read_parquet

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TABLE_SUFFIXES", "TableLimits", "dataset_files", "load_datasets", "read_table"]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def dataset_files(folder: Path) -> list[Path]:
    """The table files under `folder`, recursively, sorted by relative path.

    Hidden files and folders (a leading dot, e.g. a volume's own metadata or a temp file being
    written) are skipped. The order is deterministic, so the combined table is too.
    """
    if not folder.is_dir():
        raise UsageError(f"dataset folder {folder} does not exist or is not a folder")
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in TABLE_SUFFIXES and path.is_file():
            found.append(rel)
    return [folder / rel for rel in sorted(found, key=lambda p: p.as_posix())]


def read_table(path: Path, *, limits: TableLimits | None = None) -> pd.DataFrame:
    """One CSV or Parquet file as a DataFrame; unreadable input is a `UsageError` naming it.

    Parquet, being compressed, is read within `limits` (`_parquet`); a CSV file is as large in
    memory as on disk, and is never decompressed (pandas is told so)."""
    import pandas as pd

    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        expected = ", ".join(TABLE_SUFFIXES)
        raise UsageError(f"{path}: not a CSV or Parquet file (expected {expected})")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, compression=None)
        else:
            frame = read_parquet(path, limits or TableLimits())
    except FileNotFoundError as e:
        raise UsageError(f"{path}: no such file") from e
    except pd.errors.EmptyDataError as e:
        raise UsageError(f"{path}: the file is empty") from e
    except SemlError:
        raise
    except Exception as e:  # pandas/pyarrow raise many unrelated types for malformed input
        raise UsageError(f"{path}: cannot read as {suffix[1:]}: {e}") from e
    header = _csv_header(path) if suffix == ".csv" else [str(c) for c in frame.columns]
    dupes = sorted({c for c in header if header.count(c) > 1})
    if dupes:
        raise UsageError(f"{path}: duplicate column names {dupes}")
    return frame


def _csv_header(path: Path) -> list[str]:
    # pandas renames repeated CSV headers (a, a.1), which would hide the mistake.
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return next(csv.reader(f), [])


def load_datasets(folder: Path, *, limits: TableLimits | None = None) -> pd.DataFrame:
    """Every CSV and Parquet file under `folder`, checked for the same columns and concatenated.

    Files are read in relative-path order; columns are put in the first file's order. A file
    whose columns differ from the first one's is an error naming that file and the difference.
    Together the files may take at most `limits.max_bytes` in memory.
    """
    import pandas as pd

    files = dataset_files(folder)
    if not files:
        raise UsageError(f"no CSV or Parquet files in {folder}")
    limits = limits or TableLimits()
    frames: list[pd.DataFrame] = []
    columns: list[str] = []
    used = 0
    for path in files:
        frame = read_table(path, limits=limits)
        used += int(frame.memory_usage(index=False).sum())
        if used > limits.max_bytes:
            raise PolicyError(
                f"the datasets in {folder} take more than {format_size(used)} in memory, over "
                f"the limit of {format_size(limits.max_bytes)} (at {path})"
            )
        names = [str(c) for c in frame.columns]
        if not frames:
            columns = names
        elif set(names) != set(columns):
            missing = sorted(set(columns) - set(names))
            extra = sorted(set(names) - set(columns))
            raise UsageError(
                f"{path} has different columns from {files[0]}: "
                f"missing {missing}, unexpected {extra}"
            )
        frame.columns = names
        frames.append(frame[columns])
    combined = pd.concat(frames, ignore_index=True)
    if combined.empty:
        raise UsageError(f"the datasets in {folder} hold no rows")
    return combined
