"""The volume directory's layout: names, scanning a workspace, and cleaning leftovers."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
from pathlib import Path

from seml.errors import IntegrityError, UsageError
from seml.volume._io import remove_tree
from seml.volume._manifest import GENERATION_RE, check_relative_path

__all__ = [
    "HEADER_FILE",
    "MANIFEST_FILE",
    "PARTIAL_SUFFIX",
    "SCRATCH_PREFIX",
    "STAGING_PREFIX",
    "clean_leftovers",
    "is_leftover",
    "link_or_copy",
    "scan_workspace",
    "sha256_file",
]

HEADER_FILE = "VOLUME"
MANIFEST_FILE = "MANIFEST"
STAGING_PREFIX = ".staging-"
SCRATCH_PREFIX = ".scratch-"  # a FUSE mount's encrypted scratch files
PARTIAL_SUFFIX = ".seml-partial"
_BUFFER = 1 << 20


def scan_workspace(workspace: Path) -> list[tuple[str, os.stat_result]]:
    """Regular files under `workspace`, sorted by relative path; refuse anything else."""
    found: list[tuple[str, os.stat_result]] = []
    for root, dirs, files in os.walk(workspace):
        dirs.sort()
        for name in [*files, *(d for d in dirs if (Path(root) / d).is_symlink())]:
            path = Path(root) / name
            rel = path.relative_to(workspace).as_posix()
            st = path.lstat()
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(
                    f"cannot seal {rel}: only regular files can be stored in a volume "
                    "(symlinks, devices and sockets are refused)"
                )
            if name.endswith(PARTIAL_SUFFIX):
                continue  # a leftover of an interrupted unseal
            try:
                rel.encode("utf-8")
                check_relative_path(rel)
            except (UnicodeEncodeError, IntegrityError):
                raise UsageError(f"cannot seal {rel!r}: unsupported file name") from None
            found.append((rel, st))
    found.sort(key=lambda item: item[0])
    return found


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_BUFFER)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def link_or_copy(src: Path, dst: Path) -> None:
    """Objects are immutable, so generations can share them through hard links."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def is_leftover(name: str) -> bool:
    return (
        name in (".lock", f"{HEADER_FILE}.tmp")
        or name.startswith((STAGING_PREFIX, SCRATCH_PREFIX))
        or GENERATION_RE.fullmatch(name) is not None
    )


def clean_leftovers(path: Path, *, keep: str | None) -> None:
    """Remove what an interrupted seal left: staging dirs and generations not current."""
    for child in path.iterdir():
        name = child.name
        if name == keep or name == ".lock" or not is_leftover(name):
            continue
        if child.is_dir():
            remove_tree(child)
        else:
            child.unlink(missing_ok=True)
