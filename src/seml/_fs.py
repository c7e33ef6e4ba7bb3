"""Files that appear whole or not at all: the one atomic-write mechanism of SEML.

A file is written under a temporary name in its final folder (so the rename is atomic), flushed
to disk, renamed over its final name, and then the folder is flushed too, so the new name
survives a crash. Killed at any point, a reader finds the old file or the new one, never a
mixture; a leftover temporary name starts with a dot and ends in ``.tmp``.

- `write_atomic(path, data, mode=...)`: small files (keys 0600, signatures, state, reports);
- `atomic_writer(path)`: the same, streaming, for a caller that writes as it goes;
- `staged(*paths)`: several outputs that appear together only if all were written;
- `commit(tmp, final)` / `place(tmp, final)` + `fsync_dirs(...)`: for files written elsewhere
  first (pull's staging folder, a plot library writing to a path).

Every destination folder is resolved by `_folder()`: the one place to add checks on where
SEML writes (for instance, refusing a folder reached through a symbolic link).
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from seml.errors import StorageError

__all__ = [
    "atomic_writer",
    "commit",
    "fsync_dir",
    "fsync_dirs",
    "is_temp",
    "place",
    "staged",
    "sync_filesystem",
    "temp_path",
    "write_atomic",
]

_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp", re.DOTALL)
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}


def _folder(path: Path) -> Path:
    """The folder `path` is written into. Every write resolves its destination folder here:
    the single place to vet it."""
    return path.parent


def _fail(path: Path, e: OSError) -> StorageError:
    return StorageError(f"cannot write {path}: {e.strerror or e}")


def temp_path(final: Path) -> Path:
    """A fresh hidden name beside `final` (same folder, so renaming it over `final` is atomic)."""
    return _folder(final) / f".{final.name[:120]}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"


def is_temp(name: str) -> bool:
    """Whether a file name is one of `temp_path`'s (a write in progress, or a crash's leftover)."""
    return _TEMP_NAME.fullmatch(name) is not None


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (the names created, renamed or removed in it). A folder that
    cannot be opened or flushed at all (some filesystems refuse) is skipped; an I/O error is
    not."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise _fail(folder, e) from e
    finally:
        os.close(fd)


def fsync_dirs(folders: Iterable[Path]) -> None:
    for folder in dict.fromkeys(folders):
        fsync_dir(folder)


def sync_filesystem(folder: Path) -> None:
    """Flush everything written so far on the filesystem holding `folder`: for many files at
    once, one syncfs(2) commits them together where an fsync each would commit one by one
    (a pull of thousands of small files). Where syncfs is missing, sync(2) does it."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as e:
        raise _fail(folder, e) from e
    try:
        if _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _syncfs(fd: int) -> int:
    global _libc_syncfs
    if _libc_syncfs is None:
        try:
            import ctypes

            _libc_syncfs = ctypes.CDLL(None, use_errno=True).syncfs
        except (OSError, AttributeError):
            _libc_syncfs = False
    if _libc_syncfs is False:
        return -1
    return int(_libc_syncfs(fd))


_libc_syncfs: Any = None


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _rename(tmp: Path, final: Path, *, overwrite: bool) -> None:
    if overwrite:
        tmp.replace(final)
        return
    # A hard link fails if `final` exists, atomically; the temporary name then goes away.
    try:
        os.link(tmp, final)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        if final.exists():  # a filesystem without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, "File exists", str(final)) from None
        tmp.rename(final)
        return
    tmp.unlink()


def place(tmp: Path, final: Path, *, overwrite: bool = True) -> None:
    """Rename an already flushed `tmp` over `final`; the caller flushes `final`'s folder (once
    for many files, with `fsync_dirs`). Raises OSError."""
    _rename(tmp, _folder(final) / final.name, overwrite=overwrite)


def commit(tmp: Path, final: Path, *, overwrite: bool = True, synced: bool = False) -> None:
    """Flush `tmp` (unless `synced`), rename it over `final`, flush the folder.

    With `overwrite=False` an existing `final` is left alone and FileExistsError is raised;
    any other failure is a StorageError naming `final`.
    """
    try:
        if not synced:
            _fsync_path(tmp)
        place(tmp, final, overwrite=overwrite)
    except FileExistsError:
        raise
    except OSError as e:
        raise _fail(final, e) from e
    fsync_dir(_folder(final))


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, mode: int = 0o666, overwrite: bool = True, sync: bool = True
) -> Iterator[BinaryIO]:
    """An unbuffered binary file to write `path` through; it gets its final name only when the
    block ends without error (else it is removed). `mode` is applied at creation (0o600 for
    secrets: the content is never readable by others, not even for a moment). `sync=False`
    skips the flushes (atomic, but not durable across a power loss)."""
    tmp = temp_path(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    except OSError as e:
        raise _fail(path, e) from e
    try:
        with open(fd, "wb", buffering=0) as f:
            yield f
            if sync:
                os.fsync(f.fileno())
        if sync:
            commit(tmp, path, overwrite=overwrite, synced=True)
        else:
            place(tmp, path, overwrite=overwrite)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if isinstance(e, FileExistsError):
            raise
        raise _fail(path, e) from e
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_atomic(
    path: Path, data: bytes | str, *, mode: int = 0o666, overwrite: bool = True
) -> None:
    """Write all of `data` (str: UTF-8) to `path` atomically and durably (see the module)."""
    raw = data.encode() if isinstance(data, str) else data
    with atomic_writer(path, mode=mode, overwrite=overwrite) as f:
        view = memoryview(raw)
        while view:
            view = view[f.write(view) or 0 :]


@contextlib.contextmanager
def staged(*finals: Path) -> Iterator[list[Path]]:
    """Yield one temporary path per final path, to be written by the caller (or a library that
    wants a path); on success all are committed, on any error all are removed, so nothing
    appears under a final name unless the whole block succeeded."""
    for final in finals:
        try:
            _folder(final).mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"cannot create folder {_folder(final)}: {e.strerror or e}") from e
    temps = [temp_path(final) for final in finals]
    try:
        yield temps
        for tmp, final in zip(temps, finals, strict=True):
            commit(tmp, final)
    finally:
        for tmp in temps:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
