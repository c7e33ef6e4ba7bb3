"""Large objects fetched as ranged parts in parallel, each decrypted straight to its offset.

rclone's content format fixes where every chunk lives: plaintext chunk i (64 KiB) is sealed at
object byte 32 + (64 KiB + 16) * i under the header's nonce plus i. So a range of whole chunks
can be fetched on its own (a ranged GET on S3, a seek on a file) and decrypted as a stream of
its own by giving it a header with the nonce advanced to its first chunk; its plaintext is
written with pwrite at 64 KiB * i in the staging file. Every chunk is still authenticated with
the data key and its position-bound nonce: a range cannot be moved, cut or replaced without
failing. As soon as the parts from the start of the file are written, one worker at a time
reads them back (from the page cache: their write-back to the disk was started as they were
written) and hashes them in order, while the others keep fetching; the SHA-256 checked against
the manifest is of exactly the bytes that will get the final name, and when the last part
lands only that part is left to hash.

Parts run as ordinary tasks on the pull's worker threads, so memory is bounded by the number of
transfers, as for whole files.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from typing import BinaryIO, cast

from seml._fs import start_writeback
from seml.crypt import Cipher
from seml.errors import IntegrityError, StorageError
from seml.store import ObjectStore
from seml.sync._common import SyncProgress
from seml.sync._manifest import FileEntry

__all__ = ["PART_BLOCKS", "SplitFile", "part_count"]

# rclone crypt format constants (fixed by the format, see seml.crypt).
_BLOCK_DATA = 64 * 1024
_HEADER = Cipher.encrypted_size(0)
_BLOCK = Cipher.encrypted_size(_BLOCK_DATA) - _HEADER
_MAGIC_SIZE = 8
_NONCE_MOD = 1 << 192

PART_BLOCKS = 512  # 32 MiB of plaintext per ranged part
_HASH_BUFFER = 1 << 20


def part_count(object_size: int, part_blocks: int = PART_BLOCKS) -> int:
    """How many ranged parts an object of `object_size` bytes is fetched in (1: whole)."""
    body = max(object_size - _HEADER, 0)
    return max(1, -(-body // (part_blocks * _BLOCK)))


class SplitFile:
    """One file fetched in `parts` ranged parts into a staging file (`create` makes it, new,
    and returns its descriptor; `label` names it in messages).

    `fetch_part(k)` may run on any thread; the thread that hashes the last part verifies
    the whole file. Problems (integrity) are appended to `problems`; `ok` tells the outcome.
    """

    def __init__(
        self,
        store: ObjectStore,
        cipher: Cipher,
        entry: FileEntry,
        create: Callable[[], int],
        label: str,
        verify: bool,
        problems: list[str],
        lock: threading.Lock,
        progress: SyncProgress | None,
        part_blocks: int = PART_BLOCKS,
    ) -> None:
        self.entry = entry
        self.tmp = label
        self._create = create
        self.parts = part_count(entry.object_size, part_blocks)
        self._store = store
        self._cipher = cipher
        self._verify = verify
        self._problems = problems
        self._problems_lock = lock
        self._progress = progress
        self._part_blocks = part_blocks
        self._lock = threading.Lock()
        self._header_lock = threading.Lock()
        self._header: bytes | None = None
        self._failed = False
        self._fd: int | None = None
        self._landed = [False] * self.parts  # parts written to the staging file
        self._hashed = 0  # parts hashed, from the first
        self._hashing = False  # a worker is hashing (one at a time, in order)
        self._sha = hashlib.sha256()
        self.ok = False

    def open(self) -> None:
        """Create the staging file (exclusively); call once before any part runs."""
        self._fd = self._create()

    def close(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _problem(self, message: str) -> None:
        with self._lock:
            self._failed = True
        with self._problems_lock:
            self._problems.append(message)

    def _read_header(self) -> bytes:
        with self._header_lock:  # one small ranged read, shared by every part
            if self._header is None:
                with self._store.open(self.entry.object, start=0, length=_HEADER) as src:
                    self._header = _read_exact(src, _HEADER)
            return self._header

    def fetch_part(self, k: int) -> None:
        """Fetch, decrypt and write part `k`; hash what is now contiguous from the start
        unless another worker does; verify the file when everything is hashed."""
        try:
            if not self._failed:
                self._fetch(k)
                with self._lock:
                    self._landed[k] = True
                self._hash_landed()
        except IntegrityError as e:
            self._problem(str(e))

    def _hash_landed(self) -> None:
        while True:
            with self._lock:
                k = self._hashed
                if self._hashing or self._failed or k >= self.parts or not self._landed[k]:
                    return
                self._hashing = True
            try:
                self._hash_part(k)
            finally:
                with self._lock:
                    self._hashing = False
            with self._lock:
                self._hashed = k + 1
                complete = self._hashed == self.parts
            if complete:
                self._finish()
                return

    def _hash_part(self, k: int) -> None:
        fd = self._fd
        if fd is None:  # pragma: no cover - open() always precedes the parts
            raise StorageError(f"{self.tmp}: staging file is not open")
        offset = k * self._part_blocks * _BLOCK_DATA
        end = min(offset + self._part_blocks * _BLOCK_DATA, self.entry.size)
        buf = bytearray(_HASH_BUFFER)
        view = memoryview(buf)
        try:
            while offset < end:
                n = os.preadv(fd, [view[: min(_HASH_BUFFER, end - offset)]], offset)
                if n == 0:
                    break  # the size check in _finish reports it
                self._sha.update(view[:n])
                offset += n
        except OSError as e:
            raise StorageError(f"{self.tmp}: cannot read back: {e.strerror}") from e

    def _fetch(self, k: int) -> None:
        entry = self.entry
        header = self._read_header()
        if len(header) < _HEADER:
            raise IntegrityError(
                f"{entry.path}: too short to be an rclone-encrypted file ({len(header)} bytes)"
            )
        first_block = k * self._part_blocks
        start = _HEADER + first_block * _BLOCK
        length = min(self._part_blocks * _BLOCK, entry.object_size - start)
        expect = self._cipher.decrypted_size(_HEADER + length)
        nonce = (int.from_bytes(header[_MAGIC_SIZE:], "little") + first_block) % _NONCE_MOD
        part_header = header[:_MAGIC_SIZE] + nonce.to_bytes(_HEADER - _MAGIC_SIZE, "little")
        fd = self._fd
        if fd is None:
            raise StorageError(f"{self.tmp}: staging file is not open")
        out = _WriteAt(fd, first_block * _BLOCK_DATA, self.tmp, self._progress)
        what = f"{entry.path} (part at object byte {start}, blocks counted from {first_block})"
        with self._store.open(entry.object, start=start, length=length) as body:
            src = _Prefixed(part_header, body)
            self._cipher.decrypt_stream(cast(BinaryIO, src), cast(BinaryIO, out), name=what)
        if out.count != expect:
            raise IntegrityError(
                f"{entry.path}: part at object byte {start} decrypted to {out.count} bytes, "
                f"expected {expect} (the object changed or was cut while it was read)"
            )

    def _finish(self) -> None:
        entry = self.entry
        if self._failed:
            return
        fd = self._fd
        if fd is None:  # pragma: no cover - open() always precedes the parts
            raise StorageError(f"{self.tmp}: staging file is not open")
        size = os.fstat(fd).st_size
        problem = None
        if size != entry.size:
            problem = f"{entry.path}: decrypted to {size} bytes, expected {entry.size}"
        elif self._verify and self._sha.hexdigest() != entry.sha256:
            problem = (
                f"{entry.path}: content does not match the manifest's SHA-256 "
                "(swapped with another file or replaced)"
            )
        if problem:
            self._problem(problem)
            return
        if entry.mtime:
            os.utime(fd, (entry.mtime, entry.mtime))
        self.ok = True
        if self._progress is not None:
            self._progress.file_done(entry.path, "verified" if self._verify else "decrypted")


def _read_exact(src: BinaryIO, n: int) -> bytes:
    data = b""
    while len(data) < n:
        more = src.read(n - len(data))
        if not more:
            break
        data += more
    return data


class _Prefixed:
    """A stream of `prefix` followed by everything read from `body`."""

    def __init__(self, prefix: bytes, body: BinaryIO) -> None:
        self._prefix = memoryview(prefix)
        self._body = body
        self._readinto = getattr(body, "readinto", None)

    def readinto(self, b: bytearray | memoryview) -> int:
        view = memoryview(b).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        if self._readinto is not None:
            return int(self._readinto(view) or 0)
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def read(self, n: int = -1) -> bytes:
        if self._prefix:
            take = len(self._prefix) if n < 0 else min(n, len(self._prefix))
            data = bytes(self._prefix[:take])
            self._prefix = self._prefix[take:]
            return data
        return self._body.read(n)


class _WriteAt:
    """Writes a stream at increasing offsets of an open file with pwrite."""

    def __init__(self, fd: int, offset: int, what: str, progress: SyncProgress | None) -> None:
        self._fd = fd
        self._offset = offset
        self._what = what
        self._progress = progress
        self.count = 0

    def write(self, data: bytes | memoryview) -> int:
        view = memoryview(data).cast("B")
        done = 0
        try:
            while done < len(view):
                done += os.pwrite(self._fd, view[done:], self._offset + done)
        except OSError as e:
            raise StorageError(f"{self._what}: write failed: {e.strerror or e}") from e
        start_writeback(self._fd, self._offset, done)
        self._offset += done
        self.count += done
        if self._progress is not None:
            self._progress.advance(done)
        return done
