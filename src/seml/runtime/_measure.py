"""Simulated measurement of a workload: what a TEE would hash, computed in software.

A hardware TEE measures the code it loads (MRENCLAVE, MRTD). Without hardware, SEML computes a
digest over the same three things the hardware would cover in its setting:

1. the runtime's identity: every file of the installed `seml` package (its source and the data
   it ships, such as the pinned vendor roots), by name relative to the package, so a modified
   runtime gets a different measurement (and no keys);
2. the service's code files (a file or a folder, hashed by relative path and content);
3. the service's command line.

No path on this machine enters the digest: every machine that installed the same seml release
and has the same code files gets the same value, wherever it installed them. `seml measure`
and `seml run` call the same function, so parties can put the value in the session before
anything runs; `seml measure --explain` lists what it covers and what it does not. This proves
nothing about where the code runs: it is simulation.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import NoReturn

from seml.errors import UsageError

__all__ = ["NOT_COVERED", "Explanation", "explain", "measure", "runtime_identity"]

_DOMAIN = b"seml/measurement/simulation/v1\x00"
_IDENTITY_DOMAIN = b"seml/runtime-identity/v2\x00"
_BUFFER = 1 << 18  # code files are mostly small; one buffer serves them all

# What the simulated measurement leaves out, in plain words (printed by `seml measure --explain`).
NOT_COVERED = (
    "the Python interpreter, its standard library and the installed dependencies (pydantic, "
    "cryptography, boto3, scikit-learn, ...): their versions may differ between machines",
    "where seml and the code files are installed (so machines with other install paths agree)",
    "the seml package's compiled caches (__pycache__) and the seml launcher script (a code "
    "folder with a __pycache__, a link to a folder or a dangling link is refused)",
    "files the command reads that are not given with --code, and the data it processes",
    "the environment, working directory, folders, storage settings and credentials this "
    "machine gives the service",
    "the session's injected files and secrets (delivered after attestation)",
    "the operating system, the kernel and the hardware: no TEE measured anything here (simulation)",
)


def _digests(files: Iterable[tuple[str, str]]) -> list[tuple[str, bytes]]:
    """(name, SHA-256) of each (name, path), read through one buffer (a fresh one per file
    costs its zero-fill: more than hashing the small files of the seml package)."""
    buf = bytearray(_BUFFER)
    view = memoryview(buf)
    out = []
    for name, path in files:
        h = hashlib.sha256()
        try:
            with open(path, "rb", buffering=0) as f:
                while n := f.readinto(buf):
                    h.update(view[:n])
        except OSError as e:
            raise UsageError(f"cannot read code file {path}: {e.strerror or e}") from e
        out.append((name, h.digest()))
    return out


def _tree(root: Path, *, code: bool = False) -> list[tuple[str, str]]:
    """(relative name, path) for a file, or every regular file below a folder (a link to a file
    counts), sorted. One `scandir` per folder and names as strings: a `Path` per file cost more
    than hashing the files at every `seml run`. A folder that cannot be read is an error, not a
    gap in the measurement.

    For the seml package, compiled caches (`__pycache__`) are left out. A `code` tree must hold
    nothing that a program could load unmeasured (UsageError naming the first such entry,
    before any secret is asked for): no `__pycache__` (Python runs a cached `.pyc` instead of
    its measured source when the cache's header matches the source's size and time, which
    anyone who can write the folder can forge), no link to a folder and no dangling link
    (Python imports through them; the walk enters neither), and nothing that is not a file or
    a folder. A `.pyc` outside `__pycache__` is code Python imports without a source, so it is
    measured like any file."""
    if root.is_file():
        return [(root.name, os.fspath(root))]
    if not root.is_dir():
        raise UsageError(f"code path {root} does not exist")
    if "__pycache__" in root.parts:
        if code:
            _unmeasurable(root, root, _CACHE)
        return []
    found: list[tuple[str, str]] = []

    def walk(folder: str, prefix: str) -> None:
        with os.scandir(folder) as entries:
            for e in entries:
                if e.is_dir(follow_symlinks=False):
                    if e.name == "__pycache__":
                        if code:
                            _unmeasurable(root, e.path, _CACHE)
                        continue
                    walk(e.path, f"{prefix}{e.name}/")
                elif e.is_file():
                    found.append((prefix + e.name, e.path))
                elif code:
                    what = (
                        "is a link to a folder"
                        if e.is_dir()
                        else "is a link to nothing"
                        if e.is_symlink()
                        else "is neither a file nor a folder"
                    )
                    _unmeasurable(root, e.path, what)

    try:
        walk(os.fspath(root), "")
    except OSError as e:
        raise UsageError(f"cannot read code folder {root}: {e.strerror or e}") from e
    found.sort()
    return found


_CACHE = "is a compiled cache (__pycache__)"


def _unmeasurable(root: Path, path: str | Path, what: str) -> NoReturn:
    fix = (
        f"remove it (find {root} -name __pycache__ -prune -exec rm -r {{}} +); seml runs "
        "commands with PYTHONDONTWRITEBYTECODE=1, so it does not come back"
        if what is _CACHE
        else "replace it with what it points to, or remove it"
    )
    raise UsageError(
        f"code folder {root}: {path} {what}, which a program could load but the measurement "
        f"does not cover; {fix}"
    )


def _package_root() -> Path:
    return Path(__file__).resolve().parent.parent


def _runtime_files(root: Path) -> tuple[tuple[str, str], ...]:
    """(name relative to the package, sha256 hex) of every file of the seml package."""
    return tuple((name, digest.hex()) for name, digest in _digests(_tree(root)))


def _identity(files: Iterable[tuple[str, str]]) -> str:
    h = hashlib.sha256(_IDENTITY_DOMAIN)
    for name, digest in files:
        h.update(name.encode() + b"\x00" + bytes.fromhex(digest))
    return h.hexdigest()


@lru_cache(maxsize=1)
def _installed() -> tuple[tuple[str, str], ...]:
    return _runtime_files(_package_root())


def runtime_identity() -> str:
    """Digest over the installed seml package's files (hex), whatever its install path."""
    return _identity(_installed())


@dataclass(frozen=True)
class Explanation:
    """What a measurement covers: the runtime's files, the code files (with the names that
    enter the digest), the command, and the resulting values."""

    value: str
    runtime_identity: str
    runtime_files: tuple[tuple[str, str], ...]
    code_files: tuple[tuple[str, str], ...]
    command: tuple[str, ...]
    not_covered: tuple[str, ...] = NOT_COVERED


def explain(code: Sequence[Path], command: Sequence[str], *, fresh: bool = False) -> Explanation:
    """The measurement of `command` with its `code` files, and everything it covers.

    The package's files are read once per process; `fresh` reads them again (a long-lived
    process measuring what the services it starts will measure)."""
    if fresh:
        _installed.cache_clear()
    files = _installed()
    identity = _identity(files)
    h = hashlib.sha256(_DOMAIN)
    h.update(bytes.fromhex(identity))
    code_files: list[tuple[str, str]] = []
    for root in sorted(code, key=lambda p: p.name):
        for name, digest in _digests(_tree(root, code=True)):
            code_files.append((f"{root.name}/{name}", digest.hex()))
            h.update(f"{root.name}/{name}".encode() + b"\x00" + digest)
    h.update(json.dumps(list(command), ensure_ascii=False).encode())
    return Explanation(h.hexdigest(), identity, files, tuple(code_files), tuple(command))


def measure(code: Sequence[Path], command: Sequence[str]) -> str:
    """The simulated measurement (lowercase hex SHA-256) of `command` with its `code` files.

    Code paths are identified by their base name and the relative names below them, not by
    where they sit on disk, so two machines with the same files get the same value.
    """
    return explain(code, command).value
