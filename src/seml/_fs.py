"""How SEML writes files: whole or not at all, and plaintext never outside its destination.

**Atomic.** A file is written under a temporary name in its final folder (so the rename is
atomic), flushed to disk, renamed over its final name, and then the folder is flushed too, so
the new name survives a crash. Killed at any point, a reader finds the old file or the new
one, never a mixture; a leftover temporary name starts with a dot and ends in ``.tmp``.

- `write_atomic(path, data, mode=...)`: small files (keys 0600, signatures, state, reports);
- `atomic_writer(path)`: the same, streaming, for a caller that writes as it goes;
- `staged(*paths)`: several outputs that appear together only if all were written;
- `commit(tmp, final)`: for a file or folder written elsewhere first (a volume's generation).

**Never through a link.** A path the user typed is theirs, symbolic links included. Names that
come from data (a pulled tree, a decrypted tree, a volume, a session's files) are different:
someone who can write the destination could plant ``dst/sub -> /elsewhere`` and have plaintext
land outside it. `Folder` is the one way SEML writes such names: the destination folder is
opened once, and every folder and file below it is reached relative to that descriptor, one
component at a time, with ``O_NOFOLLOW | O_DIRECTORY``; new files are created with
``O_CREAT | O_EXCL | O_NOFOLLOW`` and renamed into place (a rename replaces a link or a hard
link at the final name, it never writes through it). A folder swapped for a link between a
check and its use changes nothing: what was opened is what is written. A symbolic link on the
way is refused, naming it. Folders a private `Folder` creates are 0700, and so is the
destination itself.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
import stat
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from seml.errors import StorageError

__all__ = [
    "Folder",
    "atomic_writer",
    "commit",
    "fsync_dir",
    "is_temp",
    "staged",
    "start_writeback",
    "sync_filesystem",
    "temp_path",
    "write_atomic",
]

_TEMP_SUFFIX = ".tmp"
_TEMP_NAME = re.compile(r"\..+\.[0-9a-f]{12}\.tmp", re.DOTALL)
_NO_LINK = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK}
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_SUBDIR = _DIR | os.O_NOFOLLOW
_NEW_FILE = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_NO_FSYNC = (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES)


def _fail(path: Path, e: OSError) -> StorageError:
    return StorageError(f"cannot write {path}: {e.strerror or e}")


def _temp_name(name: str) -> str:
    return f".{name[:120]}.{secrets.token_hex(6)}{_TEMP_SUFFIX}"


def temp_path(final: Path) -> Path:
    """A fresh hidden name beside `final` (same folder, so renaming it over `final` is atomic)."""
    return final.parent / _temp_name(final.name)


def is_temp(name: str) -> bool:
    """Whether a file name is one of `temp_path`'s (a write in progress, or a crash's leftover)."""
    return _TEMP_NAME.fullmatch(name) is not None


def _fsync_fd(fd: int, where: Path) -> None:
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in _NO_FSYNC:
            raise _fail(where, e) from e


def fsync_dir(folder: Path) -> None:
    """Flush a folder's entries (the names created, renamed or removed in it). A folder that
    cannot be opened or flushed at all (some filesystems refuse) is skipped; an I/O error is
    not."""
    try:
        fd = os.open(folder, _DIR)
    except OSError:
        return
    try:
        _fsync_fd(fd, folder)
    finally:
        os.close(fd)


def sync_filesystem(folder: Path | int) -> None:
    """Flush everything written so far on the filesystem holding `folder` (a path or an open
    folder): for many files at once, one syncfs(2) commits them together where an fsync each
    would commit one by one (a pull of thousands of small files). Where syncfs is missing,
    sync(2) does it."""
    if isinstance(folder, int):
        if _syncfs(folder) != 0:
            os.sync()
        return
    try:
        fd = os.open(folder, _DIR)
    except OSError as e:
        raise _fail(folder, e) from e
    try:
        if _syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def _load_sync_file_range() -> Callable[[int, int, int], None]:
    try:
        import ctypes

        fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE: start write-out of dirty pages, do not wait

    def start(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, write)  # advisory: an error only means no early write-back

    return start


start_writeback: Callable[[int, int, int], None] = _load_sync_file_range()
"""start_writeback(fd, offset, length): Linux's sync_file_range(SYNC_FILE_RANGE_WRITE), a
no-op elsewhere. Starting write-back of a range as soon as it is written lets the disk work
while later data is computed, so a final fsync waits for the tail only."""


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


def _rename_at(
    dfd: int, tmp: str, name: str, *, overwrite: bool, dst_fd: int | None = None
) -> None:
    """Rename `tmp` (in folder `dfd`) to `name` (in `dst_fd`, default the same folder). A rename
    replaces whatever entry `name` is, a link included, and never writes through it."""
    dst = dfd if dst_fd is None else dst_fd
    if overwrite:
        os.replace(tmp, name, src_dir_fd=dfd, dst_dir_fd=dst)
        return
    # A hard link fails if `name` exists, atomically; the temporary name then goes away.
    try:
        os.link(tmp, name, src_dir_fd=dfd, dst_dir_fd=dst, follow_symlinks=False)
    except OSError as e:
        if e.errno not in _NO_LINK:
            raise
        try:  # a filesystem without hard links: check, then rename
            os.stat(name, dir_fd=dst, follow_symlinks=False)
        except FileNotFoundError:
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dst)
            return
        raise FileExistsError(errno.EEXIST, "File exists", name) from None
    os.unlink(tmp, dir_fd=dfd)


@contextlib.contextmanager
def _writer_at(
    dfd: int, name: str, where: Path, *, mode: int, overwrite: bool, sync: bool
) -> Iterator[BinaryIO]:
    """The atomic write itself, in the open folder `dfd` (`where` names the file in messages)."""
    tmp = _temp_name(name)
    try:
        fd = os.open(tmp, os.O_WRONLY | _NEW_FILE, mode, dir_fd=dfd)
    except OSError as e:
        raise _fail(where, e) from e
    try:
        with open(fd, "wb", buffering=0) as f:
            yield f
            if sync:
                os.fsync(f.fileno())
        _rename_at(dfd, tmp, name, overwrite=overwrite)
        if sync:
            _fsync_fd(dfd, where.parent)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        if isinstance(e, FileExistsError):
            raise
        raise _fail(where, e) from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dfd)
        raise


@contextlib.contextmanager
def atomic_writer(
    path: Path, *, mode: int = 0o666, overwrite: bool = True, sync: bool = True
) -> Iterator[BinaryIO]:
    """An unbuffered binary file to write `path` through; it gets its final name only when the
    block ends without error (else it is removed). `mode` is applied at creation (0o600 for
    secrets: the content is never readable by others, not even for a moment). `sync=False`
    skips the flushes (atomic, but not durable across a power loss). A symbolic link at `path`
    is replaced, never written through; the folder is the caller's, as given."""
    try:
        dfd = os.open(path.parent, _DIR)
    except OSError as e:
        raise _fail(path, e) from e
    try:
        with _writer_at(dfd, path.name, path, mode=mode, overwrite=overwrite, sync=sync) as f:
            yield f
    finally:
        os.close(dfd)


def write_atomic(
    path: Path, data: bytes | str, *, mode: int = 0o666, overwrite: bool = True
) -> None:
    """Write all of `data` (str: UTF-8) to `path` atomically and durably (see the module)."""
    with atomic_writer(path, mode=mode, overwrite=overwrite) as f:
        _write_all(f, data.encode() if isinstance(data, str) else data)


def _write_all(f: BinaryIO, raw: bytes) -> None:
    view = memoryview(raw)
    while view:
        view = view[f.write(view) or 0 :]


def commit(tmp: Path, final: Path, *, overwrite: bool = True, synced: bool = False) -> None:
    """Flush `tmp` (unless `synced`), rename it over `final` (same folder), flush the folder.

    With `overwrite=False` an existing `final` is left alone and FileExistsError is raised;
    any other failure is a StorageError naming `final`.
    """
    try:
        if not synced:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        dfd = os.open(final.parent, _DIR)
        try:
            _rename_at(dfd, tmp.name, final.name, overwrite=overwrite, dst_fd=dfd)
            _fsync_fd(dfd, final.parent)
        finally:
            os.close(dfd)
    except FileExistsError:
        raise
    except OSError as e:
        raise _fail(final, e) from e


@contextlib.contextmanager
def staged(*finals: Path) -> Iterator[list[Path]]:
    """Yield one temporary path per final path, to be written by the caller (or a library that
    wants a path); on success all are committed, on any error all are removed, so nothing
    appears under a final name unless the whole block succeeded."""
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


# -- writing below a destination, never through a link ---------------------------------------


def split_relative(rel: str, where: Path) -> list[str]:
    """The components of a '/'-separated relative name; StorageError for anything that could
    leave the folder (absolute, empty, '.', '..', NUL)."""
    if rel == "":
        return []
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\x00" in p for p in parts):
        raise StorageError(f"{where}: refusing unsafe name {rel!r} (it could leave the folder)")
    return parts


class Folder:
    """A destination folder, opened once; every name below it is reached relative to it
    without following a symbolic link (see the module). Thread-safe.

    `Folder.open(path, private=True)` makes the folder (and any folder created below it) 0700.
    Relative names use '/'; the folder itself is "".
    """

    _CACHE = 64  # folder descriptors kept open (least recently used beyond that are closed)

    def __init__(self, fd: int, path: Path, *, folder_mode: int) -> None:
        self.fd = fd
        self.path = path
        self._mode = folder_mode
        self._lock = threading.Lock()
        self._open: OrderedDict[str, list[int]] = OrderedDict()  # rel -> [fd, users]

    @classmethod
    def open(cls, path: Path, *, create: bool = True, private: bool = False) -> Folder:
        """Open (with `create`, first make) the folder `path`. The path itself is the caller's:
        a link in it is followed, once, here; nothing below it ever is."""
        path = Path(path)
        mode = 0o700 if private else 0o777
        try:
            if create:
                path.parent.mkdir(parents=True, exist_ok=True)
                with contextlib.suppress(FileExistsError):
                    path.mkdir(mode=mode)
            fd = os.open(path, _DIR)
        except NotADirectoryError:
            raise StorageError(f"{path}: is not a folder") from None
        except OSError as e:
            raise StorageError(f"{path}: cannot open folder: {e.strerror or e}") from e
        if private and stat.S_IMODE(os.fstat(fd).st_mode) != 0o700:
            try:
                os.fchmod(fd, 0o700)
            except OSError as e:
                os.close(fd)
                raise StorageError(
                    f"{path}: cannot make the folder private (0700): {e.strerror or e}"
                ) from e
        return cls(fd, path, folder_mode=mode)

    def close(self) -> None:
        with self._lock:
            for fd, _users in self._open.values():
                os.close(fd)
            self._open.clear()
            if self.fd >= 0:
                os.close(self.fd)
                self.fd = -1

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- folders ---------------------------------------------------------------------------

    @contextlib.contextmanager
    def folder(self, rel: str = "", *, create: bool = True) -> Iterator[int]:
        """The open descriptor of folder `rel` (made, 0700 if private, when missing and
        `create`; FileNotFoundError when missing otherwise), valid inside the block."""
        parts = split_relative(rel, self.path)
        if not parts:
            yield self.fd
            return
        key = "/".join(parts)
        fd = self._acquire(key, parts, create)
        try:
            yield fd
        finally:
            with self._lock:
                self._open[key][1] -= 1
                self._evict()

    def _acquire(self, key: str, parts: list[str], create: bool) -> int:
        with self._lock:
            depth = len(parts)
            while depth and "/".join(parts[:depth]) not in self._open:
                depth -= 1
            base = self._open["/".join(parts[:depth])][0] if depth else self.fd
            for i in range(depth, len(parts)):
                base = self._child(base, parts[i], "/".join(parts[: i + 1]), create)
                self._open["/".join(parts[: i + 1])] = [base, 0]
            entry = self._open[key]
            entry[1] += 1
            for i in range(1, len(parts) + 1):
                self._open.move_to_end("/".join(parts[:i]))
            return entry[0]

    def _child(self, base: int, name: str, rel: str, create: bool) -> int:
        try:
            try:
                return os.open(name, _SUBDIR, dir_fd=base)
            except FileNotFoundError:
                if not create:
                    raise
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, self._mode, dir_fd=base)
                return os.open(name, _SUBDIR, dir_fd=base)
        except FileNotFoundError:
            raise
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR):
                raise self._not_a_folder(base, name, rel) from None
            raise StorageError(f"{self.path / rel}: cannot open folder: {e.strerror}") from e

    def _not_a_folder(self, base: int, name: str, rel: str) -> StorageError:
        try:
            st = os.stat(name, dir_fd=base, follow_symlinks=False)
        except OSError:
            st = None
        if st is not None and stat.S_ISLNK(st.st_mode):
            return StorageError(
                f"{self.path / rel}: is a symbolic link; seml never writes through one "
                "(remove the link, or choose another destination)"
            )
        return StorageError(f"{self.path / rel}: is not a folder")

    def _evict(self) -> None:
        """Close least recently used descriptors nobody holds, beyond `_CACHE` (lock held)."""
        if len(self._open) <= self._CACHE:
            return
        for key in [k for k, (_fd, users) in self._open.items() if users == 0]:
            if len(self._open) <= self._CACHE:
                break
            os.close(self._open.pop(key)[0])

    def make_folders(self, rel: str) -> None:
        """Make folder `rel` and its parents (0700 if private)."""
        with self.folder(rel):
            pass

    def check_folder(self, rel: str) -> None:
        """Refuse (StorageError naming it) a link or a file on the way to folder `rel`;
        missing folders are fine. Nothing stays open: a later write looks again."""
        try:
            with contextlib.suppress(FileNotFoundError), self.folder(rel, create=False):
                pass
        finally:
            self._forget(split_relative(rel, self.path)[0] if rel else "")

    # -- files -----------------------------------------------------------------------------

    def _split(self, rel: str) -> tuple[str, str]:
        parts = split_relative(rel, self.path)
        if not parts:
            raise StorageError(f"{self.path}: a file needs a name")
        return "/".join(parts[:-1]), parts[-1]

    def lstat(self, rel: str) -> os.stat_result | None:
        """The entry `rel` itself (a link is not followed), or None when it does not exist."""
        parent, name = self._split(rel)
        try:
            with self.folder(parent, create=False) as dfd:
                return os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None

    def create(self, rel: str, *, mode: int = 0o600, read: bool = False) -> int:
        """A new file `rel` (parents made), opened for writing (and reading); never an existing
        entry, never through a link. The caller closes the descriptor."""
        parent, name = self._split(rel)
        flags = (os.O_RDWR if read else os.O_WRONLY) | _NEW_FILE
        with self.folder(parent) as dfd:
            try:
                return os.open(name, flags, mode, dir_fd=dfd)
            except OSError as e:
                raise _fail(self.path / rel, e) from e

    @contextlib.contextmanager
    def writer(
        self, rel: str, *, mode: int = 0o666, overwrite: bool = True, sync: bool = True
    ) -> Iterator[BinaryIO]:
        """`atomic_writer` for the file `rel` below this folder (parents made)."""
        parent, name = self._split(rel)
        with (
            self.folder(parent) as dfd,
            _writer_at(dfd, name, self.path / rel, mode=mode, overwrite=overwrite, sync=sync) as f,
        ):
            yield f

    def write(self, rel: str, data: bytes | str, *, mode: int = 0o666) -> None:
        """Write all of `data` to `rel` atomically and durably."""
        with self.writer(rel, mode=mode) as f:
            _write_all(f, data.encode() if isinstance(data, str) else data)

    def rename(self, old: str, new: str) -> None:
        """Move `old` to `new` (both below this folder; `new`'s parents made), replacing the
        entry at `new`, whatever it is, without writing through it. Not flushed: see `fsync`."""
        old_parent, old_name = self._split(old)
        new_parent, new_name = self._split(new)
        with self.folder(old_parent, create=False) as sfd, self.folder(new_parent) as dfd:
            try:
                _rename_at(sfd, old_name, new_name, overwrite=True, dst_fd=dfd)
            except OSError as e:
                raise StorageError(f"{self.path / new}: cannot place: {e.strerror}") from e

    def remove(self, rel: str) -> None:
        """Remove the file, link or empty folder `rel` (a link's target is never touched)."""
        parent, name = self._split(rel)
        try:
            with self.folder(parent, create=False) as dfd:
                st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    self._forget(rel)
                    os.rmdir(name, dir_fd=dfd)
                else:
                    os.unlink(name, dir_fd=dfd)
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageError(f"{self.path / rel}: cannot remove: {e.strerror}") from e

    def remove_tree(self, rel: str) -> None:
        """Remove folder `rel` and everything in it (links removed, never followed)."""
        parent, name = self._split(rel)
        with contextlib.suppress(FileNotFoundError), self.folder(parent, create=False) as dfd:
            self._forget(rel)
            shutil.rmtree(name, dir_fd=dfd, ignore_errors=True)

    def _forget(self, rel: str) -> None:
        with self._lock:
            for key in [k for k in self._open if not rel or k == rel or k.startswith(rel + "/")]:
                fd, users = self._open[key]
                if users == 0:
                    os.close(fd)
                    del self._open[key]

    def fsync(self, folders: list[str]) -> None:
        """Flush the entries of these folders (names placed or removed in them)."""
        for rel in dict.fromkeys(folders):
            with contextlib.suppress(FileNotFoundError), self.folder(rel, create=False) as fd:
                _fsync_fd(fd, self.path / rel)

    def walk(self, rel: str = "") -> Iterator[tuple[str, bool]]:
        """Every entry below folder `rel`, as (relative name, is a real folder), parents first;
        a link is an entry, never followed."""
        try:
            with self.folder(rel, create=False) as dfd:
                entries = sorted((e.name, e.is_dir(follow_symlinks=False)) for e in os.scandir(dfd))
        except FileNotFoundError:
            return
        except OSError as e:
            raise StorageError(f"{self.path / rel}: cannot list: {e.strerror}") from e
        for name, is_dir in entries:
            child = f"{rel}/{name}" if rel else name
            yield child, is_dir
            if is_dir:
                yield from self.walk(child)
