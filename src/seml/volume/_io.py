"""Small filesystem helpers for the volume: streaming with a digest, fsync, locking, wiping."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import shutil
import signal
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

__all__ = [
    "CRASH_ENV",
    "HashingReader",
    "HashingWriter",
    "RawWriter",
    "checkpoint",
    "fsync_dir",
    "locked",
    "remove_tree",
]

# Test hook: kill this process with SIGKILL at the named step of a seal, to prove that a volume
# is never left half-sealed. Has no effect unless the variable is set.
CRASH_ENV = "SEML_TEST_VOLUME_CRASH_AT"
_HASH_DEPTH = 8  # blocks (of up to 1 MiB) waiting to be hashed
HEADER_KEEP = 32  # rclone's header: magic (8) and the object's random nonce (24)


def checkpoint(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class HashingReader(io.RawIOBase):
    """Reads a file while hashing what passes through (for encrypt-and-digest in one pass).

    Hashing runs on a helper thread (hashlib releases the GIL) over a copy of each block, so it
    overlaps with the reading, encrypting and writing; at most `_HASH_DEPTH` blocks wait.
    """

    def __init__(self, raw: Any) -> None:
        super().__init__()
        self._raw = raw
        self._hash = hashlib.sha256()
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

    def __init__(self, raw: Any | None, *, hashing: bool) -> None:
        self._raw = raw
        self.digest = hashlib.sha256() if hashing else None
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if self.digest is not None:
            self.digest.update(view)
        self.size += len(view)
        if self._raw is not None:
            while view:
                n = self._raw.write(view)
                view = view[n:]
        return self.size


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
