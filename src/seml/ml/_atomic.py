"""Outputs appear under their final name only when complete (temp name in the same folder, then
`os.replace`), so a failure never leaves a half-written model, metrics or predictions file."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

from seml.errors import StorageError

__all__ = ["commit", "staged", "temp_path"]


def temp_path(final: Path) -> Path:
    """A fresh hidden name beside `final` (same folder, so the rename is atomic)."""
    return final.with_name(f".{final.name}.{secrets.token_hex(6)}.tmp")


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # some filesystems refuse fsync on a directory
        _fsync_file(path)


def commit(tmp: Path, final: Path) -> None:
    """Flush `tmp` to disk and move it over `final` in one step."""
    try:
        _fsync_file(tmp)
        tmp.replace(final)
    except OSError as e:
        raise StorageError(f"cannot write {final}: {e.strerror or e}") from e
    _fsync_dir(final.parent)


@contextlib.contextmanager
def staged(*finals: Path) -> Iterator[list[Path]]:
    """Yield one temp path per final path; on success commit them all, on any error remove them.

    The caller writes (and verifies) every temp file inside the block; nothing appears under a
    final name unless the whole block succeeded.
    """
    for final in finals:
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create folder {final.parent}: {e.strerror or e}") from e
    temps = [temp_path(final) for final in finals]
    try:
        yield temps
        for tmp, final in zip(temps, finals, strict=True):
            commit(tmp, final)
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
