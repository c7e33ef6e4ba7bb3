"""A bounded ZIP reader: an archive's members as bytes, never more than the limits allow.

Python's `zipfile` trusts an archive's directory: it builds an object per directory record and
inflates a member as far as the data goes. A few hundred kilobytes can then claim (or hide)
gigabytes. This reader parses the directory itself and refuses, before inflating anything:

- more members than `ArchiveLimits.max_members`, or a directory larger than they need;
- a member whose declared size is over its limit, or declared sizes whose sum is over the total;
- a member, or the whole archive, that would inflate more than `max_ratio` times its
  compressed size (past a small allowance): what a bomb does, and what honest data does not;
- names that are absolute, climb out (``..``), use backslashes or drive letters, repeat, or
  name folders; encrypted members; compression other than stored or deflate; ZIP64; data
  before the first member, overlapping members, a local header that disagrees with the
  directory.

Then it inflates each member in bounded steps and stops the moment the output passes the size
the directory declared (a lying header gains nothing), and checks the length and CRC-32 at the
end. The result is plain bytes; callers that need a `zipfile.ZipFile` build one from them, so
no other parser ever reads the untrusted archive.

Pure: bytes in, members out; `IntegrityError` for an archive that lies or is malformed,
`PolicyError` for one that is well formed but larger than the limits.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from seml.errors import IntegrityError, PolicyError, UsageError

__all__ = ["ArchiveLimits", "format_size", "parse_size", "read_zip"]

_MiB = 1 << 20
_GiB = 1 << 30

_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_CDIR = struct.Struct("<4s6H3L5H2L")  # central directory file header
_LOCAL = struct.Struct("<4s5H3L2H")  # local file header
_EOCD_SIG, _CDIR_SIG, _LOCAL_SIG = b"PK\x05\x06", b"PK\x01\x02", b"PK\x03\x04"
_ZIP64_LOCATOR_SIG = b"PK\x06\x07"

_STORED, _DEFLATED = 0, 8
_METHOD_NAMES = {1: "shrink", 6: "implode", 9: "deflate64", 12: "bzip2", 14: "lzma", 93: "zstd"}
_FLAG_ENCRYPTED, _FLAG_DESCRIPTOR, _FLAG_UTF8 = 0x1, 0x8, 0x800
_DESCRIPTOR_SIG = b"PK\x07\x08"
_STEP = 1 * _MiB  # inflate at most this much per step
_INPUT_STEP = 64 << 10  # and feed the inflater this much compressed input at a time


@dataclass(frozen=True)
class ArchiveLimits:
    """How much an archive may hold once inflated.

    `max_member_bytes` bounds any one member, `per_member` tightens it for named members (a
    skops ``schema.json``), `max_total_bytes` bounds the sum. `max_members` bounds the
    directory (65,535: a larger archive needs ZIP64, which is refused). `max_ratio` bounds how
    many times its compressed size a member larger than `ratio_allowance` may inflate to, and
    the archive as a whole past `total_ratio_allowance`.
    """

    max_total_bytes: int = 1 * _GiB
    max_member_bytes: int = 1 * _GiB
    max_members: int = 65_535
    per_member: Mapping[str, int] = field(default_factory=dict)
    max_ratio: int = 100
    ratio_allowance: int = 1 * _MiB
    total_ratio_allowance: int = 64 * _MiB

    def limit_for(self, name: str) -> int:
        """The most `name` may inflate to."""
        return min(self.per_member.get(name, self.max_member_bytes), self.max_member_bytes)


@dataclass(frozen=True)
class _Entry:
    name: str
    method: int
    crc: int
    compressed: int
    size: int
    start: int  # where the data starts (after the local header)
    end: int  # where the data ends
    header: int  # where the local header starts
    span_end: int  # where the member ends (after its data descriptor, if any)


def read_zip(data: bytes, *, source: str, limits: ArchiveLimits) -> dict[str, bytes]:
    """Every member of the ZIP archive `data` (named `source` in errors), inflated within
    `limits`, in directory order."""
    entries = _directory(data, source, limits)
    return {e.name: _inflate(data, e, source) for e in entries}


def _directory(data: bytes, source: str, limits: ArchiveLimits) -> list[_Entry]:
    eocd_at = _find_eocd(data, source)
    _sig, disk, cd_disk, count_here, count, cd_size, cd_offset, _comment = _EOCD.unpack_from(
        data, eocd_at
    )
    if eocd_at >= 20 and data[eocd_at - 20 : eocd_at - 16] == _ZIP64_LOCATOR_SIG:
        raise IntegrityError(f"{source}: ZIP64 archives are not accepted (no model needs one)")
    if disk or cd_disk or count_here != count:
        raise IntegrityError(f"{source}: multi-part ZIP archives are not accepted")
    if count > limits.max_members:
        raise PolicyError(
            f"{source}: the archive has {count} members, over the limit of {limits.max_members}"
        )
    if cd_offset + cd_size != eocd_at:
        raise IntegrityError(
            f"{source}: the ZIP directory is not where the archive says (data around it, or "
            "bytes prepended to the archive)"
        )
    entries: list[_Entry] = []
    names: set[str] = set()
    total = 0
    at = cd_offset
    for _ in range(count):
        entry, at = _directory_entry(data, at, cd_offset + cd_size, source)
        if entry.name in names:
            raise IntegrityError(f"{source}: member {entry.name!r} appears twice")
        names.add(entry.name)
        limit = limits.limit_for(entry.name)
        if entry.size > limit:
            raise PolicyError(
                f"{source}: member {entry.name!r} inflates to {format_size(entry.size)}, "
                f"over the limit of {format_size(limit)}"
            )
        if entry.size > max(limits.ratio_allowance, limits.max_ratio * entry.compressed):
            raise PolicyError(
                f"{source}: member {entry.name!r} inflates {format_size(entry.compressed)} to "
                f"{format_size(entry.size)}, more than {limits.max_ratio} times (a "
                "decompression bomb); refused"
            )
        total += entry.size
        if total > limits.max_total_bytes:
            raise PolicyError(
                f"{source}: the archive inflates to more than {format_size(total)}, over the "
                f"limit of {format_size(limits.max_total_bytes)}"
            )
        if total > max(limits.total_ratio_allowance, limits.max_ratio * len(data)):
            raise PolicyError(
                f"{source}: the archive's {format_size(len(data))} inflate to more than "
                f"{format_size(total)}, over {limits.max_ratio} times (a decompression bomb); "
                "refused"
            )
        entries.append(entry)
    if at != cd_offset + cd_size:
        raise IntegrityError(f"{source}: the ZIP directory holds more than its {count} members")
    _refuse_overlaps(entries, cd_offset, source)
    return entries


def _find_eocd(data: bytes, source: str) -> int:
    # The record is 22 bytes plus a comment of at most 65,535 bytes, at the very end.
    tail = data[-_EOCD.size :]
    if len(data) >= _EOCD.size and tail[:4] == _EOCD_SIG and tail[-2:] == b"\x00\x00":
        return len(data) - _EOCD.size
    at = data.rfind(_EOCD_SIG, max(0, len(data) - _EOCD.size - 0xFFFF))
    if at < 0 or at + _EOCD.size > len(data):
        raise UsageError(f"{source} is not a ZIP archive (no end of central directory)")
    (comment_length,) = struct.unpack_from("<H", data, at + 20)
    if at + _EOCD.size + comment_length != len(data):
        raise IntegrityError(f"{source}: the ZIP archive has trailing data after its directory")
    return at


def _directory_entry(data: bytes, at: int, end: int, source: str) -> tuple[_Entry, int]:
    if at + _CDIR.size > end or data[at : at + 4] != _CDIR_SIG:
        raise IntegrityError(f"{source}: the ZIP directory is truncated or malformed")
    (
        _sig,
        _made_by,
        _needed,
        flags,
        method,
        _time,
        _date,
        crc,
        compressed,
        size,
        name_length,
        extra_length,
        comment_length,
        disk,
        _internal,
        _external,
        header,
    ) = _CDIR.unpack_from(data, at)
    name_at = at + _CDIR.size
    next_at = name_at + name_length + extra_length + comment_length
    if next_at > end:
        raise IntegrityError(f"{source}: the ZIP directory is truncated or malformed")
    raw_name = data[name_at : name_at + name_length]
    name = _member_name(raw_name, flags, source)
    if disk:
        raise IntegrityError(f"{source}: member {name!r} is on another disk")
    if flags & _FLAG_ENCRYPTED:
        raise IntegrityError(f"{source}: member {name!r} is encrypted")
    if method not in (_STORED, _DEFLATED):
        label = _METHOD_NAMES.get(method, f"method {method}")
        raise UsageError(
            f"{source}: member {name!r} is compressed with {label}; only stored and deflate "
            "members are read (save the model with skops' default ZIP_STORED)"
        )
    if 0xFFFFFFFF in (compressed, size, header):
        raise IntegrityError(f"{source}: ZIP64 archives are not accepted (no model needs one)")
    if method == _STORED and compressed != size:
        raise IntegrityError(
            f"{source}: stored member {name!r} declares {size} bytes but holds {compressed}"
        )
    start = _local_header(data, header, raw_name, method, source)
    if start + compressed > len(data):
        raise IntegrityError(f"{source}: member {name!r} runs past the end of the archive")
    end = start + compressed
    span_end = end
    if flags & _FLAG_DESCRIPTOR:  # sizes and CRC repeated after the data (12 or 16 bytes)
        span_end += 16 if data[end : end + 4] == _DESCRIPTOR_SIG else 12
    entry = _Entry(name, method, crc, compressed, size, start, end, header, span_end)
    return entry, next_at


def _member_name(raw: bytes, flags: int, source: str) -> str:
    try:
        name = raw.decode("utf-8" if flags & _FLAG_UTF8 else "cp437")
    except UnicodeDecodeError as e:
        raise IntegrityError(f"{source}: a member name is not valid UTF-8") from e
    parts = name.split("/")
    unsafe = (
        not name
        or len(name) > 255
        or name.startswith("/")
        or "\\" in name
        or "\x00" in name
        or (len(name) >= 2 and name[1] == ":")
        or any(part in ("", ".", "..") for part in parts)
    )
    if unsafe:
        shown = name if len(name) <= 80 else name[:77] + "..."
        what = "names a folder" if name.endswith("/") else "is not a safe relative path"
        raise IntegrityError(f"{source}: member name {shown!r} {what}; refused")
    return name


def _local_header(data: bytes, at: int, raw_name: bytes, method: int, source: str) -> int:
    name = raw_name.decode("utf-8", errors="replace")
    if at + _LOCAL.size > len(data) or data[at : at + 4] != _LOCAL_SIG:
        raise IntegrityError(f"{source}: member {name!r} has no local header where listed")
    _sig, _needed, _flags, local_method, _t, _d, _crc, _cs, _us, name_length, extra_length = (
        _LOCAL.unpack_from(data, at)
    )
    name_at = int(at + _LOCAL.size)
    if local_method != method or data[name_at : name_at + name_length] != raw_name:
        raise IntegrityError(
            f"{source}: member {name!r}: the local header disagrees with the directory"
        )
    return name_at + int(name_length) + int(extra_length)


def _refuse_overlaps(entries: list[_Entry], cd_offset: int, source: str) -> None:
    # Members that share bytes are the classic way to multiply a small archive.
    expected = 0
    for e in sorted(entries, key=lambda e: e.header):
        if e.header != expected:
            problem = "overlap" if e.header < expected else "have unlisted bytes between them"
            raise IntegrityError(f"{source}: members {problem} (at member {e.name!r})")
        expected = e.span_end
    if expected != cd_offset:
        raise IntegrityError(f"{source}: unlisted bytes between the last member and the directory")


def _inflate(data: bytes, entry: _Entry, source: str) -> bytes:
    view = memoryview(data)[entry.start : entry.end]
    if entry.method == _STORED:
        out = bytes(view)
    else:
        out = _bounded_inflate(view, entry, source)
    if len(out) != entry.size:
        raise IntegrityError(
            f"{source}: member {entry.name!r} inflates to {len(out)} bytes, not the "
            f"{entry.size} its header declares"
        )
    if zlib.crc32(out) != entry.crc:
        raise IntegrityError(f"{source}: member {entry.name!r} fails its CRC-32 check")
    return out


def _bounded_inflate(compressed: memoryview, entry: _Entry, source: str) -> bytes:
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    parts: list[bytes] = []
    produced = offset = 0
    pending: bytes | memoryview = b""
    try:
        while not inflater.eof:
            if not pending and offset < len(compressed):
                pending = compressed[offset : offset + _INPUT_STEP]
                offset += len(pending)
            # Never ask for more than one byte past what the header declared.
            chunk = inflater.decompress(pending, min(_STEP, entry.size - produced + 1))
            pending = inflater.unconsumed_tail
            produced += len(chunk)
            if produced > entry.size:
                raise IntegrityError(
                    f"{source}: member {entry.name!r} inflates past the {entry.size} bytes its "
                    "header declares; refused"
                )
            parts.append(chunk)
            if not chunk and not pending and offset >= len(compressed):
                break  # no input left and no output pending: the stream is cut short
    except zlib.error as e:
        raise IntegrityError(f"{source}: member {entry.name!r} is corrupt: {e}") from e
    if not inflater.eof or inflater.unused_data or pending or offset < len(compressed):
        raise IntegrityError(f"{source}: member {entry.name!r} does not end where its header says")
    return b"".join(parts)


_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``1073741824``, ``512M``, ``1G``, ``2GiB`` (binary units); `UsageError` else."""
    cleaned = text.strip().upper().removesuffix("B").removesuffix("I")
    number, unit = cleaned, ""
    if cleaned and cleaned[-1] in _UNITS:
        number, unit = cleaned[:-1], cleaned[-1]
    if not number.isdigit() or int(number) <= 0:
        raise UsageError(f"size {text!r} is not a positive size such as 512M or 2G")
    return int(number) * _UNITS[unit]


def format_size(n: int) -> str:
    """A byte count for people: ``600.0 MiB``."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover
