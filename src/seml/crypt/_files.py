"""Whole regular files, encrypted or decrypted with positional I/O on a thread pool.

Chunk positions are fixed by the format (plaintext chunk i sits at 64 KiB * i, its sealed form
at 32 + (64 KiB + 16) * i), so each task reads its batch with pread, seals or opens it, and
writes it with pwrite at its final offset: reading, crypto and page-cache writes of several
batches overlap, as rclone does with parallel streams. At most `_DEPTH` batches are in flight,
so memory stays at a few MiB whatever the size. Errors are reported for the earliest batch.
"""

from __future__ import annotations

import ctypes
import os
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future

from seml.crypt import _content as c
from seml.crypt._secretbox import TAG_SIZE, open_batch, seal_batch
from seml.errors import IntegrityError, StorageError

__all__ = ["decrypt_file", "encrypt_file"]

Progress = Callable[[int], None]


def _pread_full(fd: int, buf: bytearray, size: int, offset: int) -> int:
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.preadv(fd, [view[got:size]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _load_sync_file_range() -> Callable[[int, int, int], None]:
    """Linux's sync_file_range(SYNC_FILE_RANGE_WRITE), or a no-op where it is unavailable.

    Starting write-back of each batch as soon as it is written lets the disk work while later
    batches are computed, so the caller's final fsync waits for the tail only.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return lambda fd, offset, length: None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    write = 2  # SYNC_FILE_RANGE_WRITE: start write-out of dirty pages, do not wait

    def start(fd: int, offset: int, length: int) -> None:
        fn(fd, offset, length, write)  # advisory: an error only means no early write-back

    return start


_start_writeback = _load_sync_file_range()


def _pwrite_full(fd: int, data: memoryview | bytes, offset: int) -> None:
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    _start_writeback(fd, offset, len(view))


def _run(
    batches: int,
    job: Callable[[int, bytearray, bytearray], int],
    in_size: int,
    out_size: int,
    progress: Progress | None,
) -> None:
    """Run job(batch, in_buf, out_buf) for every batch, a bounded number at a time.

    A job returns the source bytes it consumed; progress gets them in batch order.
    The first job (in batch order) that raises stops the run and its error propagates.
    """
    if batches == 1:
        done = job(0, bytearray(in_size), bytearray(out_size))
        if progress is not None:
            progress(done)
        return
    pool = c._executor()
    # No more buffer pairs than batches: zero-filling _DEPTH pairs for a file of two batches
    # cost more than encrypting it.
    free: list[tuple[bytearray, bytearray]] = []
    allocated = 0
    pending: deque[tuple[Future[int], bytearray, bytearray]] = deque()
    nxt = 0
    try:
        while nxt < batches or pending:
            while nxt < batches and (free or allocated < c._DEPTH):
                if not free:
                    free.append((bytearray(in_size), bytearray(out_size)))
                    allocated += 1
                inb, outb = free.pop()
                pending.append((pool.submit(job, nxt, inb, outb), inb, outb))
                nxt += 1
            fut, inb, outb = pending.popleft()
            done = fut.result()
            free.append((inb, outb))
            if progress is not None:
                progress(done)
    finally:
        for fut, _, _ in pending:
            fut.cancel()
        for fut, _, _ in pending:
            if not fut.cancelled():
                fut.exception()  # wait: the job may still be using our buffers and fds


def encrypt_file(
    src_fd: int, dst_fd: int, key: bytes, nonce: bytes, progress: Progress | None = None
) -> int:
    """Encrypt the whole regular file `src_fd` into `dst_fd` (written from offset 0).

    Returns the encrypted size. StorageError if the source shrinks while it is read.
    """
    size = os.fstat(src_fd).st_size
    _pwrite_full(dst_fd, c.MAGIC + nonce, 0)
    base = int.from_bytes(nonce, "little")

    def job(b: int, inb: bytearray, outb: bytearray) -> int:
        offset = b * c._BATCH_PLAIN
        want = min(c._BATCH_PLAIN, size - offset)
        if _pread_full(src_fd, inb, want, offset) != want:
            raise StorageError("the source file shrank while it was being encrypted")
        m = seal_batch(key, base + b * c._BATCH_BLOCKS, inb, want, outb, c.BLOCK_DATA_SIZE)
        _pwrite_full(dst_fd, memoryview(outb)[:m], c.HEADER_SIZE + b * c._BATCH_SEALED)
        return want

    if size:
        _run(-(-size // c._BATCH_PLAIN), job, c._BATCH_PLAIN, c._BATCH_SEALED, progress)
    return c.encrypted_size(size)


class _AuthFailed(Exception):
    def __init__(self, block: int) -> None:
        super().__init__(block)
        self.block = block


def decrypt_file(
    src_fd: int, dst_fd: int, key: bytes, name: str, progress: Progress | None = None
) -> int:
    """Decrypt the whole regular file `src_fd` into `dst_fd`; return the plaintext size.

    IntegrityError naming `name` and the reason on any problem; `dst_fd` may then hold part
    of the plaintext (authenticated chunks only): the caller discards it.
    """
    size = os.fstat(src_fd).st_size
    header = bytearray(c.HEADER_SIZE)
    got = _pread_full(src_fd, header, c.HEADER_SIZE, 0)
    if got < c.HEADER_SIZE:
        raise IntegrityError(
            f"{name}: too short to be an rclone-encrypted file "
            f"({got} bytes; the header alone is {c.HEADER_SIZE})"
        )
    if header[: len(c.MAGIC)] != c.MAGIC:
        raise IntegrityError(f"{name}: not an rclone-encrypted file (bad magic in the header)")
    body = size - c.HEADER_SIZE
    full, residue = divmod(body, c.BLOCK_SIZE)
    if residue and residue <= TAG_SIZE:
        raise IntegrityError(
            f"{name}: block {full} is {residue} bytes, no longer than its "
            f"{TAG_SIZE}-byte tag (file truncated or garbled)"
        )
    if progress is not None:
        progress(c.HEADER_SIZE)
    base = int.from_bytes(header[len(c.MAGIC) :], "little")

    def job(b: int, inb: bytearray, outb: bytearray) -> int:
        offset = c.HEADER_SIZE + b * c._BATCH_SEALED
        want = min(c._BATCH_SEALED, size - offset)
        if _pread_full(src_fd, inb, want, offset) != want:
            raise StorageError(f"{name}: the file shrank while it was being decrypted")
        first = b * c._BATCH_BLOCKS
        m, failed = open_batch(key, base + first, inb, want, outb, c.BLOCK_DATA_SIZE)
        if failed >= 0:
            raise _AuthFailed(first + failed)
        _pwrite_full(dst_fd, memoryview(outb)[:m], b * c._BATCH_PLAIN)
        return want

    try:
        if body:
            _run(-(-body // c._BATCH_SEALED), job, c._BATCH_SEALED, c._BATCH_PLAIN, progress)
    except _AuthFailed as e:
        raise IntegrityError(c._auth_message(name, e.block)) from None
    return c.decrypted_size(size)
