"""Small filesystem helpers for the volume: streaming with a digest, fsync, locking, wiping."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import shutil
import stat
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

if TYPE_CHECKING:  # `concurrent.futures` (with `logging`) is imported when a pool starts
    from concurrent.futures import Future

_T = TypeVar("_T")
_R = TypeVar("_R")

__all__ = [
    "HashingReader",
    "HashingWriter",
    "Identity",
    "RawWriter",
    "Syncer",
    "file_identity",
    "locked",
    "map_in_order",
    "read_upto",
    "regular_fd",
    "remove_tree",
    "write_all",
]

_HASH_DEPTH = 8  # blocks (of up to 1 MiB) waiting to be hashed
_SYNC_WORKERS = 8  # fsyncs in flight: the journal commits several together
_SYNC_DEPTH = 32  # files written but not yet durable (each holds an open descriptor)
HEADER_KEEP = 32  # rclone's header: magic (8) and the object's random nonce (24)


class HashingReader(io.RawIOBase):
    """Reads a file while hashing what passes through (for encrypt-and-digest in one pass).

    Hashing runs on a helper thread (hashlib releases the GIL) over a copy of each block, so it
    overlaps with the reading, encrypting and writing; at most `_HASH_DEPTH` blocks wait.
    """

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw
        self._hash = hashlib.sha256()
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seml-sha256")
        self._pending: deque[Future[None]] = deque()
        self.size = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n: int = self._raw.readinto(buffer) or 0
        if n:
            block = bytes(memoryview(buffer)[:n])  # the caller reuses its buffer
            self._pending.append(self._pool.submit(self._hash.update, block))
            while len(self._pending) > _HASH_DEPTH:
                self._pending.popleft().result()
            self.size += n
        return n

    def hexdigest(self) -> str:
        """The SHA-256 of everything read (waits for the helper thread)."""
        while self._pending:
            self._pending.popleft().result()
        self._pool.shutdown()
        return self._hash.hexdigest()

    def close(self) -> None:
        self._pool.shutdown(cancel_futures=True)
        super().close()


class HashingWriter:
    """A write-only sink that hashes and (optionally) writes everything to a raw file."""

    def __init__(self, raw: Any | None = None) -> None:
        self._raw = raw
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.digest.update(view)
        self.size += len(view)
        if self._raw is not None:
            while view:
                n = self._raw.write(view)
                view = view[n:]
        return self.size


@contextlib.contextmanager
def locked(path: Path, *, exclusive: bool, wait: bool = True) -> Iterator[bool]:
    """flock on the volume's lock file: readers share it, a sealer is alone.

    With ``exclusive`` and not ``wait``, falls back to a shared lock when someone else holds
    one; yields whether the exclusive lock was obtained.
    """
    try:
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as e:
        if e.errno in (errno.EROFS, errno.EACCES) and not exclusive:
            yield False  # a read-only volume: nobody can be sealing it
            return
        raise
    try:
        if exclusive and not wait:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                got = True
            except BlockingIOError:
                fcntl.flock(fd, fcntl.LOCK_SH)
                got = False
            yield got
        else:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield exclusive
    finally:
        os.close(fd)


def remove_tree(path: Path, *, wipe: bool = False) -> None:
    """Delete a tree; with `wipe`, overwrite regular files with zeros first (best effort: the
    filesystem may keep old blocks, which is why workspaces prefer tmpfs)."""
    if not path.exists():
        return
    if wipe:
        for root, _dirs, files in os.walk(path):
            for name in files:
                _zero(Path(root) / name)
    shutil.rmtree(path, ignore_errors=True)


def _zero(path: Path) -> None:
    try:
        if path.is_symlink():
            return
        size = path.stat().st_size
        block = bytes(min(size, 1 << 20))
        with open(path, "r+b", buffering=0) as f:
            remaining = size
            while remaining > 0:
                remaining -= f.write(block[: min(remaining, len(block))]) or 0
            os.fsync(f.fileno())
    except OSError:
        pass


class RawWriter:
    """Loops until a raw (unbuffered) file took every byte; keeps the object's header."""

    def __init__(self, raw: io.FileIO) -> None:
        self._raw = raw
        self.header = b""

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        total = len(view)
        if len(self.header) < HEADER_KEEP:
            self.header += bytes(view[: HEADER_KEEP - len(self.header)])
        while view:
            n = self._raw.write(view) or 0
            view = view[n:]
        return total


class Syncer:
    """fsyncs and closes written files on helper threads, so the disk flushes one file while
    the next is encrypted. `wait` returns once every file handed over is durable (or raises the
    first fsync error); leaving the context waits too and always closes every descriptor."""

    def __init__(self) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=_SYNC_WORKERS, thread_name_prefix="seml-fsync")
        self._pending: deque[Future[None]] = deque()
        self._lock = threading.Lock()  # files may be handed over from several threads

    def __enter__(self) -> Syncer:
        return self

    def __exit__(self, *exc: object) -> None:
        self._pool.shutdown(wait=True)  # every queued job runs and closes its descriptor

    def submit(self, fd: int) -> None:
        """Take ownership of `fd`: fsync it, then close it."""
        with self._lock:
            self._pending.append(self._pool.submit(_fsync_close, fd))
        while (oldest := self._oldest(_SYNC_DEPTH)) is not None:
            oldest.result()

    def wait(self) -> None:
        while (oldest := self._oldest(0)) is not None:
            oldest.result()

    def _oldest(self, keep: int) -> Future[None] | None:
        with self._lock:
            return self._pending.popleft() if len(self._pending) > keep else None


def _fsync_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def map_in_order(fn: Callable[[_T], _R], items: Sequence[_T], *, workers: int) -> list[_R]:
    """`[fn(x) for x in items]` with up to `workers` calls at a time. On the first failure (in
    item order) the calls not started are dropped, the running ones finish, and it is raised."""
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor

    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="seml-volume")
    try:
        futures = [pool.submit(fn, item) for item in items]
        return [f.result() for f in futures]
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# What tells whether a file was written: size, modification and change times, inode.
Identity = tuple[int, int, int, int]


def file_identity(st: os.stat_result) -> Identity:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def regular_fd(raw: BinaryIO) -> int | None:
    """The descriptor of a regular file on disk, or None for anything else (a stream)."""
    try:
        fd = raw.fileno()
    except (OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_upto(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from the start of a regular file (fewer: the whole file)."""
    parts = []
    done = 0
    while done < limit:
        part = os.pread(fd, limit - done, done)
        if not part:
            break
        parts.append(part)
        done += len(part)
    return b"".join(parts)
