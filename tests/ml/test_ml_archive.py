"""Model archives are read within bounds: decompression bombs, lying headers, too many members,
unsafe names and overlapping members are refused with one line, in bounded memory."""

from __future__ import annotations

import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sklearn.tree import DecisionTreeClassifier

from _skops_tamper import Member, SemlForks, build_zip, deflated, deflated_repeat, stored
from seml.errors import IntegrityError, PolicyError, UsageError
from seml.ml import ArchiveLimits, iris_frame, model_limits, parse_size, save_model
from seml.ml._archive import read_zip

MiB = 1 << 20
LIMITS = ArchiveLimits(max_total_bytes=8 * MiB, max_member_bytes=4 * MiB, max_members=5)


def _read(data: bytes, limits: ArchiveLimits = LIMITS) -> dict[str, bytes]:
    return read_zip(data, source="m.skops", limits=limits)


def _spaces(total: int, chunk: int = MiB) -> Iterator[bytes]:
    """`total` spaces, `chunk` at a time (never all in memory)."""
    block = b" " * chunk
    for done in range(0, total, chunk):
        yield block[: min(chunk, total - done)]


def test_members_come_back_as_written() -> None:
    data = build_zip([stored("schema.json", b"{}"), deflated("1.npy", [b"ab" * 1000])])
    assert _read(data) == {"schema.json": b"{}", "1.npy": b"ab" * 1000}


def test_archives_written_by_zipfile_read_the_same(tmp_path: Path) -> None:
    path = tmp_path / "z.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("a", b"x" * 5000)
        with archive.open("b", "w") as f:  # streamed: a data descriptor follows the data
            f.write(bytes(range(256)) * 10)
    assert _read(path.read_bytes()) == {"a": b"x" * 5000, "b": bytes(range(256)) * 10}


def test_a_header_that_understates_the_size_is_caught_while_inflating() -> None:
    member = deflated("schema.json", _spaces(2 * MiB))
    member.size = 1000
    with pytest.raises(IntegrityError, match=r"'schema.json' inflates past the 1000 bytes its"):
        _read(build_zip([member]))


def test_a_header_that_overstates_the_size_is_caught() -> None:
    member = deflated("a", [b"x" * 3000])
    member.size = 5000
    with pytest.raises(IntegrityError, match=r"'a' inflates to 3000 bytes, not the 5000"):
        _read(build_zip([member]))
    honest = stored("b", b"y" * 10)
    honest.size = 11  # stored members hold exactly what they declare
    with pytest.raises(IntegrityError, match=r"stored member 'b' declares 11 bytes but holds 10"):
        _read(build_zip([honest]))


def test_a_wrong_checksum_or_a_cut_stream_is_caught() -> None:
    member = stored("a", b"hello")
    member.crc ^= 1
    with pytest.raises(IntegrityError, match=r"'a' fails its CRC-32 check"):
        _read(build_zip([member]))
    cut = deflated("b", [bytes(range(256)) * 100])
    cut.stored = cut.stored[: len(cut.stored) // 2]
    with pytest.raises(IntegrityError, match=r"'b' (is corrupt|does not end where)"):
        _read(build_zip([cut]))


def test_declared_sizes_over_the_limits_are_refused_before_inflating() -> None:
    big = Member("schema.json", b"", size=5 * MiB, crc=0, method=8)
    with pytest.raises(PolicyError, match=r"'schema.json' inflates to 5.0 MiB, over the limit"):
        _read(build_zip([big]))
    three = [Member(f"{i}.npy", b"\0" * 40_000, size=3 * MiB, crc=0, method=8) for i in range(3)]
    with pytest.raises(PolicyError, match=r"inflates to more than 9.0 MiB, over the limit of 8"):
        _read(build_zip(three))
    schema = ArchiveLimits(per_member={"schema.json": 1 * MiB})
    with pytest.raises(PolicyError, match=r"'schema.json' inflates to 2.0 MiB, over the limit"):
        _read(build_zip([deflated("schema.json", _spaces(2 * MiB))]), schema)


def test_a_bomb_within_the_size_limits_is_refused_by_its_ratio() -> None:
    bomb = deflated("1.npy", _spaces(3 * MiB))  # a few kilobytes
    with pytest.raises(PolicyError, match=r"'1.npy' inflates .* more than 100 times"):
        _read(build_zip([bomb]))
    # Many small members, each under the allowance, add up the same way.
    many = [deflated(f"{i}.npy", [b"\0" * (512 << 10)]) for i in range(5)]
    small = ArchiveLimits(total_ratio_allowance=1 * MiB)
    with pytest.raises(PolicyError, match=r"inflate to more than .* over 100 times"):
        _read(build_zip(many), small)


def test_too_many_members_are_refused() -> None:
    data = build_zip([stored(f"{i}.npy", b"x") for i in range(6)])
    with pytest.raises(PolicyError, match=r"has 6 members, over the limit of 5"):
        _read(data)


@pytest.mark.parametrize(
    "name",
    ["../evil", "/etc/passwd", "a/../../b", "a\\b", "C:x", "a//b", "./a", "dir/", "a\x00b", ""],
)
def test_unsafe_member_names_are_refused(name: str) -> None:
    with pytest.raises(IntegrityError, match=r"member name .* (is not a safe relative path|names)"):
        _read(build_zip([stored(name, b"x")]))


def test_repeated_and_overlapping_members_are_refused() -> None:
    with pytest.raises(IntegrityError, match=r"member 'a' appears twice"):
        _read(build_zip([stored("a", b"1"), stored("a", b"2")]))
    # "b" is hidden inside "a": its directory entry points at a local header within a's data.
    inner = build_zip([stored("b", b"payload")])
    inner_member = inner[: inner.index(b"PK\x01\x02")]
    outer = [stored("a", inner_member), stored("b", b"payload")]
    data = build_zip(outer, offsets={1: 30 + len("a")})
    with pytest.raises(IntegrityError, match=r"members overlap"):
        _read(data)


def test_bytes_around_the_archive_are_refused() -> None:
    data = build_zip([stored("a", b"x")])
    with pytest.raises(IntegrityError, match=r"not where the archive says"):
        _read(b"junk" + data)
    with pytest.raises(IntegrityError, match=r"trailing data"):
        _read(data + b"junk")
    with pytest.raises(UsageError, match=r"not a ZIP archive"):
        _read(b"PK\x03\x04 not really")


def test_other_compression_and_encryption_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "b.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("a", b"x" * 100)
    with pytest.raises(UsageError, match=r"'a' is compressed with bzip2; only stored and deflate"):
        _read(path.read_bytes())
    locked = stored("a", b"x")
    locked.flags |= 0x1
    with pytest.raises(IntegrityError, match=r"'a' is encrypted"):
        _read(build_zip([locked]))


def test_a_zip64_archive_is_refused() -> None:
    data = bytearray(build_zip([stored("a", b"x")]))
    eocd = data.rindex(b"PK\x05\x06")
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, 0, 1)
    data[eocd:eocd] = locator
    # Keep the directory offset honest so only the ZIP64 marker is wrong.
    with pytest.raises(IntegrityError, match=r"ZIP64 archives are not accepted"):
        _read(bytes(data))


def test_sizes_parse_in_binary_units() -> None:
    assert parse_size("1024") == 1024
    assert parse_size("512M") == 512 * MiB
    assert parse_size("2G") == parse_size("2GiB") == parse_size("2gb") == 2 << 30
    for bad in ("", "0", "-1G", "1.5G", "lots"):
        with pytest.raises(UsageError, match="not a positive size"):
            parse_size(bad)
    limits = model_limits(64 * MiB)
    assert limits.max_total_bytes == limits.max_member_bytes == 64 * MiB
    assert limits.limit_for("schema.json") == 64 * MiB


# --- real bombs against the real command, memory measured ----------------------------------
# Each command runs in a process of its own, forked from a server that imported seml's model
# code once (`SemlForks`); the baseline is measured the same way, so the bound compares what
# the commands allocate.


@pytest.fixture(scope="module")
def schema_bomb() -> Member:
    """A ``schema.json`` of 600 MiB of spaces, deflated to well under a megabyte."""
    return deflated_repeat("schema.json", b" " * MiB, 600)


@pytest.fixture(scope="module")
def baseline_kib(tmp_path_factory: pytest.TempPathFactory, seml_forks: SemlForks) -> int:
    """Peak memory of `seml ml inspect` on a small, valid model."""
    iris = iris_frame("classification")
    path = tmp_path_factory.mktemp("good") / "model.skops"
    save_model(DecisionTreeClassifier().fit(iris.drop(columns="species"), iris["species"]), path)
    result = seml_forks.measure("ml", "inspect", str(path))
    assert result["rc"] == 0, result
    peak = result["peak_kib"]
    assert isinstance(peak, int)
    return peak


def _assert_small(result: dict[str, object], baseline_kib: int) -> None:
    peak = result["peak_kib"]
    assert isinstance(peak, int)
    assert peak < baseline_kib + 64 * 1024, (peak, baseline_kib)


@pytest.mark.slow
def test_a_schema_bomb_is_refused_in_bounded_memory(
    tmp_path: Path, schema_bomb: Member, baseline_kib: int, seml_forks: SemlForks
) -> None:
    bomb = tmp_path / "bomb.skops"
    bomb.write_bytes(build_zip([schema_bomb]))
    assert bomb.stat().st_size < MiB
    result = seml_forks.measure("ml", "inspect", str(bomb))
    assert result["rc"] == 4, result
    assert result["err"] == (
        f"seml: error: {bomb}: member 'schema.json' inflates to 600.0 MiB, over the limit of "
        "128.0 MiB\n"
    )
    _assert_small(result, baseline_kib)


@pytest.mark.slow
def test_a_bomb_whose_header_lies_is_stopped_while_inflating(
    tmp_path: Path, schema_bomb: Member, baseline_kib: int, seml_forks: SemlForks
) -> None:
    liar = Member(schema_bomb.name, schema_bomb.stored, size=10_000, crc=schema_bomb.crc, method=8)
    bomb = tmp_path / "liar.skops"
    bomb.write_bytes(build_zip([liar]))
    inputs = tmp_path / "in.csv"
    iris_frame("classification").to_csv(inputs, index=False)
    out = tmp_path / "out.csv"
    argv = ["ml", "predict", "--model", str(bomb), "--input", str(inputs), "--out", str(out)]
    result = seml_forks.measure(*argv)
    assert result["rc"] == 3, result
    assert result["err"] == (
        f"seml: error: {bomb}: member 'schema.json' inflates past the 10000 bytes its header "
        "declares; refused\n"
    )
    _assert_small(result, baseline_kib)
    assert not out.exists()


@pytest.mark.slow
def test_an_array_bomb_under_the_size_limit_is_refused_by_ratio(
    tmp_path: Path, baseline_kib: int, seml_forks: SemlForks
) -> None:
    array_bomb = deflated_repeat("1.npy", b"\0" * MiB, 300)  # under the 1 GiB limit
    bomb = tmp_path / "array.skops"
    bomb.write_bytes(build_zip([stored("schema.json", b"{}"), array_bomb]))
    result = seml_forks.measure("ml", "inspect", str(bomb))
    assert result["rc"] == 4, result
    assert "member '1.npy' inflates" in str(result["err"])
    assert "more than 100 times (a decompression bomb); refused" in str(result["err"])
    _assert_small(result, baseline_kib)


def test_the_bombs_are_real_deflate_streams() -> None:
    # The bombs repeat one deflate segment; zlib itself must inflate them to the full size.
    bomb = deflated_repeat("b", b" " * MiB, 5)
    assert zlib.decompress(bomb.stored, -zlib.MAX_WBITS) == b" " * (5 * MiB)
    assert zlib.crc32(b" " * (5 * MiB)) == bomb.crc
    assert len(bomb.stored) < 5 * 2 * 1024  # about 1,000 to 1
    assert _read(build_zip([bomb]), ArchiveLimits(max_ratio=10**6)) == {"b": b" " * (5 * MiB)}
