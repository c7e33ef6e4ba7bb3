"""Parquet inputs are read within bounds: a small file that decodes to gigabytes (many rows,
or one long text repeated through a dictionary) is refused before it is decoded, and page
headers that disagree with the footer are refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.linear_model import LinearRegression

from _skops_tamper import SemlForks
from seml.errors import IntegrityError, PolicyError, UsageError
from seml.ml import iris_frame, load_datasets, read_table, save_model
from seml.ml._parquet import TableLimits

IRIS = iris_frame("classification")


@pytest.mark.parametrize(
    "options",
    [
        {"compression": "snappy"},
        {"compression": "zstd", "row_group_size": 37},
        {"compression": "gzip", "use_dictionary": False},
        {"compression": None, "data_page_version": "2.0"},
    ],
    ids=["snappy", "zstd-row-groups", "gzip-plain", "v2-pages"],
)
def test_honest_files_read_exactly_as_pyarrow_reads_them(
    tmp_path: Path, options: dict[str, object]
) -> None:
    path = tmp_path / "iris.parquet"
    pq.write_table(pa.Table.from_pandas(IRIS), path, **options)
    pd.testing.assert_frame_equal(read_table(path), pd.read_parquet(path))


@pytest.fixture(scope="module")
def rows_bomb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 million zeros: 305 MiB once decoded, a few hundred KiB on disk (built once; the
    tests only read it)."""
    path = tmp_path_factory.mktemp("bomb") / "rows.parquet"
    pd.DataFrame({"x": np.zeros(40_000_000)}).to_parquet(path)
    return path


def test_many_rows_in_a_small_file_are_refused_before_decoding(rows_bomb: Path) -> None:
    bomb = rows_bomb
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(
        PolicyError,
        match=r"rows.parquet: decodes to more than 305.2 MiB, over "
        r"the limit of 256.0 MiB for this file",
    ):
        read_table(bomb)


def test_one_long_text_repeated_through_a_dictionary_is_refused(tmp_path: Path) -> None:
    # 4,000 references to one 1 MiB string: 4 GiB once decoded, a few hundred bytes on disk.
    text = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(4000, dtype=np.int32)), pa.array(["x" * (1 << 20)])
    )
    bomb = tmp_path / "text.parquet"
    pq.write_table(pa.table({"species": text}), bomb, compression="zstd")
    assert bomb.stat().st_size < 64 << 10
    with pytest.raises(PolicyError, match=r"text.parquet: decodes to more than 3.9 GiB"):
        read_table(bomb)


def test_a_page_header_that_disagrees_with_the_footer_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "plain.parquet"
    pq.write_table(pa.Table.from_pandas(IRIS), path, compression=None, use_dictionary=False)
    data = bytearray(path.read_bytes())
    start = pq.ParquetFile(path).metadata.row_group(0).column(0).data_page_offset
    # Compact Thrift: field 1 (page type, i32) = 0, then field 2 (uncompressed size, i32).
    assert data[start : start + 3] == b"\x15\x00\x15"
    size_at = start + 3
    assert data[size_at] & 0x80 and not data[size_at + 1] & 0x80  # a two-byte varint
    zigzag = (data[size_at] & 0x7F) | (data[size_at + 1] << 7)
    bigger = zigzag + 2  # one byte more, same varint length
    data[size_at : size_at + 2] = bytes([(bigger & 0x7F) | 0x80, bigger >> 7])
    path.write_bytes(bytes(data))
    with pytest.raises(
        IntegrityError,
        match=r"row group 0, column 'sepal_length': the page "
        r"headers declare \d+ bytes, the footer \d+",
    ):
        read_table(path)


def test_nested_columns_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "nested.parquet"
    pq.write_table(pa.table({"x": [[1.0, 2.0], [3.0]]}), path)
    with pytest.raises(UsageError, match=r"nested columns \['x'\]; only flat tables"):
        read_table(path)


def test_a_folder_of_files_is_bounded_as_a_whole(tmp_path: Path) -> None:
    for i in range(3):
        IRIS.to_parquet(tmp_path / f"{i}.parquet")
    small = TableLimits(max_bytes=20_000, ratio_allowance=20_000)
    with pytest.raises(PolicyError, match=r"take more than .* over the limit of 19.5 KiB"):
        load_datasets(tmp_path, limits=small)
    assert len(load_datasets(tmp_path)) == 3 * len(IRIS)


@pytest.mark.slow
def test_predict_refuses_a_parquet_bomb_in_bounded_memory(
    tmp_path: Path, rows_bomb: Path, seml_forks: SemlForks
) -> None:
    model = tmp_path / "model.skops"
    x = pd.DataFrame({"x": [0.0, 1.0, 2.0]})
    save_model(LinearRegression().fit(x, [0.0, 1.0, 2.0]), model)
    small = tmp_path / "small.parquet"
    x.to_parquet(small)
    out = tmp_path / "out.csv"
    argv = ["ml", "predict", "--model", str(model), "--out", str(out), "--input"]
    baseline = seml_forks.measure(*argv, str(small))
    assert baseline["rc"] == 0, baseline
    out.unlink()
    bomb = rows_bomb
    refused = seml_forks.measure(*argv, str(bomb))
    assert refused["rc"] == 4, refused
    assert refused["err"].startswith(f"seml: error: {bomb}: decodes to more than")
    assert refused["peak_kib"] < baseline["peak_kib"] + 64 * 1024, (refused, baseline)
    assert not out.exists()
