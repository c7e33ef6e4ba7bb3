"""Bounded Parquet reading: a small file never becomes gigabytes in memory.

Parquet compresses twice: a codec (snappy, zstd, ...) per page, and encodings (run lengths,
dictionaries) per value. Forty kilobytes can declare fifty million rows, or one megabyte
string repeated a million times. Before pyarrow decodes anything, SEML checks:

- the footer: flat columns of plain types only, rows per row group adding up, and the decoded
  size the rows imply (`TableLimits.max_bytes`, and no more than `max_ratio` times the file
  past `ratio_allowance`);
- every page header (read here, not by pyarrow): declared sizes that add up to what the footer
  says, so neither can understate the other; pyarrow then refuses a page that inflates to
  anything but its declared size, so no page inflates past what was checked;
- text columns are read as dictionaries and their decoded size is computed from the
  dictionary before a single string is copied out of it.

Row groups are read one at a time and their real size is checked against the limit as they
arrive.
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seml.errors import IntegrityError, PolicyError, UsageError
from seml.ml._archive import format_size

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TableLimits", "read_parquet"]

_MiB = 1 << 20
_GiB = 1 << 30
_MAX_PAGE_HEADER = 16 * _MiB  # pyarrow's own default limit
_DATA_PAGE, _DICTIONARY_PAGE, _DATA_PAGE_V2 = 0, 2, 3
_FIXED_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}


@dataclass(frozen=True)
class TableLimits:
    """How large a table file may become once decoded."""

    max_bytes: int = 4 * _GiB
    max_ratio: int = 1000
    ratio_allowance: int = 256 * _MiB

    def cap(self, file_size: int) -> int:
        """The most a file of `file_size` bytes may decode to."""
        return min(self.max_bytes, max(self.ratio_allowance, self.max_ratio * file_size))


def read_parquet(path: Path, limits: TableLimits) -> pd.DataFrame:
    """A Parquet file as a DataFrame, refused (`PolicyError`) if it would decode to more than
    `limits` allow, or (`IntegrityError`) if its page headers disagree with its footer."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        size = path.stat().st_size
        metadata = pq.ParquetFile(path).metadata
    except FileNotFoundError:
        raise
    except (OSError, pa.ArrowException) as e:
        raise UsageError(f"{path}: cannot read as parquet: {e}") from e
    cap = limits.cap(size)
    text = _check_footer(metadata, path, cap)
    _check_pages(path, metadata)
    try:
        reader = pq.ParquetFile(path, read_dictionary=text)
        tables, used = [], 0
        for i in range(metadata.num_row_groups):
            table = reader.read_row_group(i)
            if table.num_rows != metadata.row_group(i).num_rows:
                raise IntegrityError(f"{path}: row group {i} holds other rows than it declares")
            used += _decoded_size(table)
            if used > cap:
                raise PolicyError(_too_big(path, used, cap))
            tables.append(_decode_text(table))
        combined = pa.concat_tables(tables) if tables else reader.schema_arrow.empty_table()
        return combined.to_pandas()
    except pa.ArrowException as e:
        raise UsageError(f"{path}: cannot read as parquet: {e}") from e


def _too_big(path: Path, size: int, cap: int) -> str:
    return (
        f"{path}: decodes to more than {format_size(size)}, over the limit of "
        f"{format_size(cap)} for this file (a decompression bomb?)"
    )


def _check_footer(metadata: Any, path: Path, cap: int) -> list[str]:
    """Flat columns of known types; the rows add up; the fixed-width decoded size fits.
    Returns the text (byte array) columns, to be read as dictionaries."""
    import pyarrow as pa

    schema = metadata.schema
    nested = [f.name for f in schema.to_arrow_schema() if pa.types.is_nested(f.type)]
    if nested or len(schema.to_arrow_schema()) != metadata.num_columns:
        raise UsageError(f"{path}: nested columns {nested}; only flat tables are read")
    text: list[str] = []
    width = 0
    for j in range(metadata.num_columns):
        column = schema.column(j)
        if column.physical_type == "BYTE_ARRAY":
            text.append(column.name)
            width += 8  # an offset per row; the text itself is checked when read
        elif column.physical_type == "FIXED_LEN_BYTE_ARRAY":
            width += max(8, int(column.length))
        elif column.physical_type in _FIXED_WIDTH:
            width += max(8, _FIXED_WIDTH[column.physical_type])
        else:
            raise UsageError(f"{path}: column {column.path!r} has unsupported type")
    rows = sum(metadata.row_group(i).num_rows for i in range(metadata.num_row_groups))
    if rows != metadata.num_rows:
        raise IntegrityError(
            f"{path}: its row groups hold {rows} rows, its footer says {metadata.num_rows}"
        )
    if rows * width > cap:
        raise PolicyError(_too_big(path, rows * width, cap))
    return text


def _check_pages(path: Path, metadata: Any) -> None:
    """Walk every page header of every column chunk: the pages must exactly fill the chunk as
    the footer describes it, and hold the values it declares."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for i in range(metadata.num_row_groups):
            group = metadata.row_group(i)
            for j in range(group.num_columns):
                chunk = group.column(j)
                where = f"{path}: row group {i}, column {chunk.path_in_schema!r}"
                _check_chunk(data, chunk, group.num_rows, where)


def _check_chunk(data: Any, chunk: Any, rows: int, where: str) -> None:
    start = chunk.data_page_offset
    if chunk.has_dictionary_page and 0 < chunk.dictionary_page_offset < start:
        start = chunk.dictionary_page_offset
    end = start + chunk.total_compressed_size
    if start < 4 or end > len(data):
        raise IntegrityError(f"{where}: pages lie outside the file")
    at, inflated, values = start, 0, 0
    while at < end:
        header, length = _page_header(data, at, min(end, at + _MAX_PAGE_HEADER), where)
        kind, size, stored = (_field(header, n, where) for n in (1, 2, 3))
        inflated += length + size
        at += length + stored
        if kind == _DATA_PAGE:
            values += _nested_int(header, 5, 1, where)
        elif kind == _DATA_PAGE_V2:
            values += _nested_int(header, 8, 1, where)
        elif kind != _DICTIONARY_PAGE:
            raise IntegrityError(f"{where}: a page of unknown type {kind}")
    if at != end or inflated != chunk.total_uncompressed_size:
        raise IntegrityError(
            f"{where}: the page headers declare {inflated} bytes, the footer "
            f"{chunk.total_uncompressed_size}"
        )
    if values != chunk.num_values or values != rows:
        raise IntegrityError(f"{where}: pages hold {values} values for {rows} rows")


def _field(header: dict[int, Any], field: int, where: str) -> int:
    value = header.get(field)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise IntegrityError(f"{where}: a page header lacks its type or sizes")
    return value


def _nested_int(header: dict[int, Any], field: int, inner: int, where: str) -> int:
    value = header.get(field, {}).get(inner) if isinstance(header.get(field), dict) else None
    if not isinstance(value, int) or value < 0:
        raise IntegrityError(f"{where}: a data page does not say how many values it holds")
    return value


def _page_header(data: Any, at: int, end: int, where: str) -> tuple[dict[int, Any], int]:
    reader = _Compact(data, at, end, where)
    return reader.struct(0), reader.at - at


class _Compact:
    """Just enough of Thrift's compact protocol to read a Parquet page header: integer fields
    are returned, nested structs as dicts, everything else skipped (with bounds checked)."""

    def __init__(self, data: Any, at: int, end: int, where: str) -> None:
        self.data, self.at, self.end, self.where = data, at, end, where

    def _fail(self) -> IntegrityError:
        return IntegrityError(f"{self.where}: a page header is malformed")

    def byte(self) -> int:
        if self.at >= self.end:
            raise self._fail()
        value = self.data[self.at]
        self.at += 1
        return int(value)

    def varint(self) -> int:
        value = shift = 0
        while True:
            b = self.byte()
            value |= (b & 0x7F) << shift
            if not b & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise self._fail()

    def zigzag(self) -> int:
        n = self.varint()
        return (n >> 1) ^ -(n & 1)

    def skip(self, n: int) -> None:
        if n < 0 or self.at + n > self.end:
            raise self._fail()
        self.at += n

    def struct(self, depth: int) -> dict[int, Any]:
        if depth > 16:
            raise self._fail()
        fields: dict[int, Any] = {}
        last = 0
        while True:
            head = self.byte()
            if head == 0:
                return fields
            delta, kind = head >> 4, head & 0x0F
            last = last + delta if delta else self.zigzag()
            fields[last] = self.value(kind, depth)

    def value(self, kind: int, depth: int) -> Any:
        if kind in (1, 2):  # booleans live in the type nibble
            return kind == 1
        if kind == 3:
            return self.byte()
        if kind in (4, 5, 6):
            return self.zigzag()
        if kind == 7:
            self.skip(8)
            return None
        if kind == 8:
            self.skip(self.varint())
            return None
        if kind in (9, 10):
            head = self.byte()
            count, element = head >> 4, head & 0x0F
            if count == 15:
                count = self.varint()
            self._each(count, [element], depth)
            return None
        if kind == 11:
            count = self.varint()
            if count:
                types = self.byte()
                self._each(count, [types >> 4, types & 0x0F], depth)
            return None
        if kind == 12:
            return self.struct(depth + 1)
        raise self._fail()

    def _each(self, count: int, kinds: list[int], depth: int) -> None:
        if count > self.end - self.at:  # every element takes at least one byte
            raise self._fail()
        for _ in range(count):
            for kind in kinds:
                self.value(kind, depth + 1)


def _decoded_size(table: Any) -> int:
    """Bytes the table takes once its dictionary columns are decoded."""
    import pyarrow as pa
    import pyarrow.compute as pc

    total = 0
    for column in table.columns:
        for piece in column.chunks:
            if pa.types.is_dictionary(piece.type):
                lengths = pc.binary_length(piece.dictionary)
                used = pc.sum(pc.take(lengths, piece.indices)).as_py() or 0
                total += used + 8 * len(piece)
            else:
                total += piece.nbytes
    return total


def _decode_text(table: Any) -> Any:
    """Dictionary columns back to plain text columns (their size was checked)."""
    import pyarrow as pa

    for i, field in enumerate(table.schema):
        if pa.types.is_dictionary(field.type):
            plain = table.column(i).cast(field.type.value_type)
            table = table.set_column(i, field.name, plain)
    return table
