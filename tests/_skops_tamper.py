"""What an attacker does to a model file: edit the arrays and schema stored in a skops archive,
or hand-build a ZIP whose headers lie. Test helpers only."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seml.cli import seml_command


class SkopsArchive:
    """A skops model file opened for tampering: its schema and members, written back with
    `save` exactly as skops would (a stored ZIP)."""

    def __init__(self, path: Path) -> None:
        with zipfile.ZipFile(path) as archive:
            self.members = {name: archive.read(name) for name in archive.namelist()}
        self.schema: dict[str, Any] = json.loads(self.members["schema.json"])

    def objects(self, class_name: str) -> list[dict[str, Any]]:
        """Schema nodes of every object of class `class_name`, in document order."""
        return [n for n in _walk(self.schema) if n.get("__class__") == class_name]

    @staticmethod
    def state(node: dict[str, Any]) -> dict[str, Any]:
        """The attribute nodes of an object node (its state dict)."""
        state: dict[str, Any] = node["content"]["content"]
        return state

    def array(self, node: dict[str, Any]) -> np.ndarray[Any, Any]:
        """The numpy array an array node stores in its own member."""
        loaded: np.ndarray[Any, Any] = np.load(
            io.BytesIO(self.members[node["file"]]), allow_pickle=False
        )
        return loaded

    def put(self, node: dict[str, Any], values: np.ndarray[Any, Any]) -> None:
        """Replace the array an array node stores."""
        buffer = io.BytesIO()
        np.save(buffer, values, allow_pickle=False)
        self.members[node["file"]] = buffer.getvalue()

    def edit(self, node: dict[str, Any], change: Any) -> None:
        """Load the array of `node`, let `change` edit it in place, and store it back."""
        values = self.array(node).copy()
        change(values)
        self.put(node, values)

    def save(self, path: Path) -> Path:
        self.members["schema.json"] = json.dumps(self.schema).encode()
        with zipfile.ZipFile(path, "w") as archive:
            for name, content in self.members.items():
                archive.writestr(name, content)
        return path


def json_value(node: dict[str, Any]) -> Any:
    """The value of a JSON node (ints, strings, floats skops keeps inline)."""
    return json.loads(node["content"])


def set_json_value(node: dict[str, Any], value: Any) -> None:
    """Change a JSON node's value. skops shares objects by ``__id__`` (small ints, strings), so
    the node gets an id of its own: otherwise the first node with the old id would win."""
    node["content"] = json.dumps(value)
    node["__id__"] = _fresh_id()


_ids = iter(range(10**15, 10**16))


def _fresh_id() -> int:
    return next(_ids)


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


@dataclass
class Member:
    """One member of a hand-built ZIP: its name and the bytes it stores, compressed already
    when `method` is 8 (raw deflate), and what its headers claim."""

    name: str
    stored: bytes
    size: int
    crc: int
    method: int = 0
    flags: int = 0x800  # UTF-8 names


def stored(name: str, data: bytes) -> Member:
    return Member(name, data, len(data), zlib.crc32(data))


def deflated(name: str, chunks: Iterable[bytes]) -> Member:
    """A deflated member built from `chunks` without holding them all in memory."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    parts, size, crc = [], 0, 0
    for chunk in chunks:
        size += len(chunk)
        crc = zlib.crc32(chunk, crc)
        parts.append(compressor.compress(chunk))
    parts.append(compressor.flush())
    return Member(name, b"".join(parts), size, crc, method=8)


def deflated_repeat(name: str, chunk: bytes, times: int) -> Member:
    """`chunk` repeated `times` times, deflated in an instant: one full-flushed deflate segment
    (which refers to nothing before it) repeated, then a final empty block."""
    segment_maker = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    segment = segment_maker.compress(chunk) + segment_maker.flush(zlib.Z_FULL_FLUSH)
    end = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS).flush()
    crc = 0
    for _ in range(times):
        crc = zlib.crc32(chunk, crc)
    return Member(name, segment * times + end, len(chunk) * times, crc, method=8)


def build_zip(members: list[Member], *, offsets: dict[int, int] | None = None) -> bytes:
    """A ZIP archive of `members` whose headers say exactly what each `Member` claims.
    `offsets` lets a directory entry point at another local header (index -> offset)."""
    out = bytearray()
    directory = bytearray()
    for i, m in enumerate(members):
        name = m.name.encode()
        at = len(out)
        out += struct.pack(
            "<4s5H3L2H",
            b"PK\x03\x04",
            20,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.stored),
            m.size,
            len(name),
            0,
        )
        out += name + m.stored
        header = (offsets or {}).get(i, at)
        directory += struct.pack(
            "<4s6H3L5H2L",
            b"PK\x01\x02",
            20,
            20,
            m.flags,
            m.method,
            0,
            0x21,
            m.crc,
            len(m.stored),
            m.size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            header,
        )
        directory += name
    start = len(out)
    out += directory
    out += struct.pack(
        "<4s4H2LH", b"PK\x05\x06", 0, 0, len(members), len(members), len(directory), start, 0
    )
    return bytes(out)


def add_attribute(obj: dict[str, Any], key: str, value: Any) -> None:
    """Add `key` = `value` (a JSON value) to an object's stored state, as skops would store it."""
    state = obj["content"]
    state["content"][key] = {
        "__class__": type(value).__name__,
        "__module__": "builtins",
        "__loader__": "JsonNode",
        "content": json.dumps(value),
        "is_json": True,
        "__id__": _fresh_id(),
    }
    key_types = state["key_types"]["content"]
    key_types.append(dict(key_types[0]))


def npy_with_header(array: np.ndarray[Any, Any], header: dict[str, Any]) -> bytes:
    """The bytes of `array` saved as .npy, but with `header` (descr, fortran_order, shape)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + np.ascontiguousarray(array).tobytes()


# Runs a command and reports its exit code, stderr and peak resident memory (KiB): the wrapper's
# only child is the command, so RUSAGE_CHILDREN measures it alone.
_MEASURE = """
import json, resource, subprocess, sys
done = subprocess.run(sys.argv[1:], capture_output=True, text=True, timeout=300)
peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(json.dumps({"rc": done.returncode, "err": done.stderr, "peak_kib": peak}))
"""


def measure(*argv: str) -> dict[str, Any]:
    """`seml *argv` in a subprocess: {"rc", "err", "peak_kib"}."""
    done = subprocess.run(
        [sys.executable, "-c", _MEASURE, *seml_command(), *argv],
        capture_output=True,
        text=True,
        timeout=400,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result
