"""Simulated measurement of a workload: what a TEE would hash, computed in software.

A hardware TEE measures the code it loads (MRENCLAVE, MRTD). Without hardware, SEML computes a
digest over the same three things the hardware would cover in its setting:

1. the runtime's identity: every source file of the installed `seml` package, so a modified
   runtime gets a different measurement (and no keys);
2. the service's code files (a file or a folder, hashed by relative path and content);
3. the service's command line.

`seml measure` and `seml run` call the same function, so parties can put the value in the
session before anything runs. This proves nothing about where the code runs: it is simulation.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from functools import lru_cache
from pathlib import Path

from seml.errors import UsageError

__all__ = ["measure", "runtime_identity"]

_DOMAIN = b"seml/measurement/simulation/v1\x00"
_BUFFER = 1 << 20


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(_BUFFER):
                h.update(block)
    except OSError as e:
        raise UsageError(f"cannot read code file {path}: {e.strerror or e}") from e
    return h.digest()


def _tree(root: Path) -> Iterable[tuple[str, Path]]:
    """(relative name, path) for a file, or every regular file below a folder, sorted."""
    if root.is_file():
        yield root.name, root
        return
    if not root.is_dir():
        raise UsageError(f"code path {root} does not exist")
    entries = sorted(
        (p.relative_to(root).as_posix(), p)
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    yield from entries


@lru_cache(maxsize=1)
def runtime_identity() -> str:
    """Digest over the installed seml package's own source files (hex)."""
    package_root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256(b"seml/runtime-identity/v1\x00")
    for name, path in _tree(package_root):
        if not name.endswith(".py"):
            continue
        h.update(name.encode() + b"\x00" + _file_digest(path))
    return h.hexdigest()


def measure(code: Sequence[Path], command: Sequence[str]) -> str:
    """The simulated measurement (lowercase hex SHA-256) of `command` with its `code` files.

    Code paths are identified by their base name and the relative names below them, not by
    where they sit on disk, so two machines with the same files get the same value.
    """
    h = hashlib.sha256(_DOMAIN)
    h.update(bytes.fromhex(runtime_identity()))
    for root in sorted(code, key=lambda p: p.name):
        for name, path in _tree(root):
            h.update(f"{root.name}/{name}".encode() + b"\x00" + _file_digest(path))
    h.update(json.dumps(list(command), ensure_ascii=False).encode())
    return h.hexdigest()
