"""What an attacker does to a model file: edit the arrays and schema stored in a skops archive,
or hand-build a ZIP whose headers lie; and run `seml` commands against such files, each in a
process of its own, without paying an interpreter start each (`SemlForks`). Test helpers only."""

from __future__ import annotations

import io
import json
import os
import select
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


# The server behind `SemlForks`: it imports seml's model code once, then for each request (one
# JSON line on stdin) forks a child that runs the `seml` console entry point exactly as the
# installed script does, and answers one JSON line. A forked child starts with the server's
# pages mapped, so its peak resident memory (wait4 reports it for that child alone) is the
# server's imports plus what the command allocates; a baseline measured the same way cancels
# the imports out. SIGALRM ends a child that hangs (exit -14).
_FORK_SERVER = """
import importlib, json, os, signal, sys, tempfile, traceback
for name in sys.argv[1:]:
    importlib.import_module(name)
from seml.cli import entry
from seml.ml._modelfile import _skops_io
_skops_io()  # skops as seml imports it (without its list of every estimator)
for line in sys.stdin:
    request = json.loads(line)
    with tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                os.chdir(request["cwd"])
                os.environ.clear()
                os.environ.update(request["env"])
                null = os.open(os.devnull, os.O_RDWR)
                os.dup2(null, 0)
                os.dup2(null, 1)
                os.dup2(err.fileno(), 2)
                signal.alarm(request["timeout"])
                sys.argv = ["seml", *request["argv"]]
                entry()
                code = 0
            except SystemExit as e:  # as Python itself ends on it
                code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
                if code == 1 and not isinstance(e.code, int):
                    print(e.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _pid, status, usage = os.wait4(pid, 0)
        err.seek(0)
        answer = {
            "rc": os.waitstatus_to_exitcode(status),
            "err": err.read().decode(errors="replace"),
            "peak_kib": usage.ru_maxrss,
        }
        print(json.dumps(answer), flush=True)
"""

# What `seml ml inspect` and `seml ml predict` import: the server loads it before any fork.
_PRELOAD = (
    "seml.cli._app",
    "seml.cli._ml",
    "seml.cli._machine",
    "seml.ml",
    "seml.ml._modelfile",
    "seml.ml._validate",
    "seml.ml._predict",
    "seml.ml._parquet",
)


class SemlForks:
    """`seml` commands, each in a process of its own (a crash or a hang is that command's exit
    status, not the test run's), forked from one server that imported seml's model code once:
    a command then costs tens of milliseconds instead of an interpreter and scikit-learn start.
    The measured peak memory includes the server's imports (the same for every command), so
    compare it with a baseline measured here too, never with a fresh `seml` process."""

    def __init__(self) -> None:
        self._server = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER, *_PRELOAD],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def measure(self, *argv: str, timeout: int = 300) -> dict[str, Any]:
        """`seml *argv` with this process's environment and folder: {"rc", "err", "peak_kib"}
        (exit status, negative for a signal; everything written to stderr; peak KiB)."""
        assert self._server.stdin is not None and self._server.stdout is not None
        request = {"argv": list(argv), "env": dict(os.environ), "cwd": str(Path.cwd())}
        self._server.stdin.write(json.dumps({**request, "timeout": timeout}) + "\n")
        self._server.stdin.flush()
        ready, _, _ = select.select([self._server.stdout], [], [], timeout + 60)
        line = self._server.stdout.readline() if ready else ""
        if not line:
            self.close()
            raise AssertionError(f"the seml fork server gave no answer for {argv}")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self._server.stdin is not None and not self._server.stdin.closed:
            self._server.stdin.close()
        try:
            self._server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._server.kill()
            self._server.wait()
        if self._server.stdout is not None:
            self._server.stdout.close()
