"""Whole regular files, encrypted or decrypted with positional I/O on a thread pool.

Chunk positions are fixed by the format (plaintext chunk i sits at 64 KiB * i, its sealed form
at 32 + (64 KiB + 16) * i), so each task reads its batch with pread, seals or opens it, and
writes it with pwrite at its final offset: reading, crypto and writes of several batches
overlap, as rclone does with parallel streams. At most `_DEPTH` batches are in flight, so
memory stays at a few MiB whatever the size. Errors are reported for the earliest batch.

The plaintext of every batch can also go, in file order, to a `sink` run by the calling thread
(a SHA-256 of what was read or written, computed in the same pass).

A large decrypted file can be written with direct I/O (`direct=True`): plaintext batches are
1 MiB at 1 MiB offsets, so they go from page-aligned buffers straight to the disk, skipping a
copy into the page cache (which costs more CPU here than opening the chunks) and leaving
nothing dirty for the caller's final fsync. Where the filesystem has no direct I/O (tmpfs),
the file is written through the page cache, its write-back started batch by batch.
"""

from __future__ import annotations

import errno
import fcntl
import mmap
import os
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from seml._fs import start_writeback
from seml.crypt import _content as c
from seml.crypt._secretbox import TAG_SIZE, Buffer, open_batch, seal_batch
from seml.errors import IntegrityError, StorageError

if TYPE_CHECKING:
    from concurrent.futures import Future

__all__ = ["decrypt_file", "encrypt_file"]

Progress = Callable[[int], None]
Sink = Callable[[memoryview], object]
# A job: (batch index, input buffer, output buffer) -> (source bytes consumed, plaintext view).
Job = Callable[[int, Buffer, Buffer], tuple[int, memoryview]]

_ALIGN = 4096  # direct I/O offsets, lengths and buffers: a multiple of any disk's block size
DIRECT_MIN = 8 * c._BATCH_PLAIN  # smaller files: the page cache is cheaper than waiting on I/O


def _pread_full(fd: int, buf: Buffer, size: int, offset: int) -> int:
    view = memoryview(buf)
    got = 0
    while got < size:
        n = os.preadv(fd, [view[got:size]], offset + got)
        if n == 0:
            break
        got += n
    return got


def _pwrite_full(fd: int, data: memoryview | bytes, offset: int, writeback: bool = True) -> None:
    """Write all of `data` at `offset`; with `writeback`, start writing it to the disk now.

    Write-back is started for the batches of files larger than one batch only: for a small
    file the call cost more than it saved (one sync_file_range per file, up to 1 ms each on a
    busy disk, about a sixth of pushing a tree of small files); the caller's fsync or syncfs
    writes them.
    """
    view = memoryview(data)
    done = 0
    while done < len(view):
        done += os.pwrite(fd, view[done:], offset + done)
    if writeback:
        start_writeback(fd, offset, len(view))


class _DirectOutput:
    """Writes 1 MiB-aligned batches of a new file with O_DIRECT, while the file allows it.

    The last batch is padded with zeros to the alignment and the file cut to its size by
    `finish`. If the filesystem refuses direct I/O (when it is turned on, or on a write), the
    file goes back to ordinary writes and nothing is lost.

    The file is first extended (sparse) to its padded size: a direct write past the end of a
    file waits for the one before it on ext4 (it changes the size under the inode's lock),
    one inside the file does not, so the batches' writes reach the disk side by side. Four
    writers of 1 MiB into a 1 GiB file took 2.6-4.4 s extended first, 6.6-6.9 s not (one
    writer: 5.1-7 s) on this machine's disk; a whole decrypt under load 9 was short of CPU
    and showed no difference either way.
    """

    def __init__(self, fd: int, size: int) -> None:
        self.fd = fd
        self._flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        try:
            fcntl.fcntl(fd, fcntl.F_SETFL, self._flags | os.O_DIRECT)
            self.on = True
        except OSError:
            self.on = False
        if self.on:
            os.ftruncate(fd, -(-size // _ALIGN) * _ALIGN)

    def write(self, buf: Buffer, size: int, offset: int) -> None:
        if self.on:
            padded = -(-size // _ALIGN) * _ALIGN
            view = memoryview(buf)
            if padded != size:
                view[size:padded] = bytes(padded - size)
            try:
                done = 0
                while done < padded:
                    done += os.pwrite(self.fd, view[done:padded], offset + done)
                return
            except OSError as e:
                if e.errno != errno.EINVAL:
                    raise
                self.off()
        _pwrite_full(self.fd, memoryview(buf)[:size], offset)

    def off(self) -> None:
        if self.on:
            self.on = False
            fcntl.fcntl(self.fd, fcntl.F_SETFL, self._flags)

    def finish(self, size: int) -> None:
        """Back to ordinary writes, the file cut to `size` (the last batch was padded)."""
        self.off()
        if os.fstat(self.fd).st_size != size:
            os.ftruncate(self.fd, size)


def _buffer(size: int, aligned: bool) -> Buffer:
    return mmap.mmap(-1, size) if aligned else bytearray(size)


def _run(
    batches: int,
    job: Job,
    sizes: tuple[int, int],
    progress: Progress | None,
    sink: Sink | None,
    aligned: bool = False,
) -> None:
    """Run job(batch, in_buf, out_buf) for every batch, a bounded number at a time.

    Progress gets the source bytes each job consumed and `sink` its plaintext, in batch order,
    on this thread. The first job (in batch order) that raises stops the run; its error
    propagates. `sizes` are the buffer sizes; `aligned` makes page-aligned ones.
    """
    if batches == 1:
        done, plain = job(0, _buffer(sizes[0], aligned), _buffer(sizes[1], aligned))
        if sink is not None:
            sink(plain)
        if progress is not None:
            progress(done)
        return
    pool = c._executor()
    # No more buffer pairs than batches: zero-filling _DEPTH pairs for a file of two batches
    # cost more than encrypting it.
    free: list[tuple[Buffer, Buffer]] = []
    allocated = 0
    pending: deque[tuple[Future[tuple[int, memoryview]], Buffer, Buffer]] = deque()
    nxt = 0
    try:
        while nxt < batches or pending:
            while nxt < batches and (free or allocated < c._DEPTH):
                if not free:
                    free.append((_buffer(sizes[0], aligned), _buffer(sizes[1], aligned)))
                    allocated += 1
                inb, outb = free.pop()
                pending.append((pool.submit(job, nxt, inb, outb), inb, outb))
                nxt += 1
            fut, inb, outb = pending[0]
            done, plain = fut.result()
            pending.popleft()
            if sink is not None:
                sink(plain)
            del plain
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
    src_fd: int,
    dst_fd: int,
    key: bytes,
    nonce: bytes,
    progress: Progress | None = None,
    sink: Sink | None = None,
    *,
    writeback: bool = True,
) -> int:
    """Encrypt the whole regular file `src_fd` into `dst_fd` (written from offset 0).

    Returns the encrypted size. `sink` gets the plaintext read, in order. StorageError if the
    source shrinks while it is read. `writeback=False`: no early write-back of a large file
    either (for output that is never flushed: the page cache keeps it, as any buffered write).
    """
    size = os.fstat(src_fd).st_size
    header = c.MAGIC + nonce
    base = int.from_bytes(nonce, "little")
    batches = -(-size // c._BATCH_PLAIN)
    many = batches > 1
    writeback = writeback and many

    def job(b: int, inb: Buffer, outb: Buffer) -> tuple[int, memoryview]:
        offset = b * c._BATCH_PLAIN
        want = min(c._BATCH_PLAIN, size - offset)
        if _pread_full(src_fd, inb, want, offset) != want:
            raise StorageError("the source file shrank while it was being encrypted")
        m = seal_batch(key, base + b * c._BATCH_BLOCKS, inb, want, outb, c.BLOCK_DATA_SIZE)
        if many:
            _pwrite_full(
                dst_fd, memoryview(outb)[:m], c.HEADER_SIZE + b * c._BATCH_SEALED, writeback
            )
        else:  # a small file: header and body in one write
            _pwrite_full(dst_fd, header + memoryview(outb)[:m], 0, writeback=False)
        return want, memoryview(inb)[:want]

    if many:
        _pwrite_full(dst_fd, header, 0, writeback)
        _run(batches, job, (c._BATCH_PLAIN, c._BATCH_SEALED), progress, sink)
    elif size:
        _run(1, job, (size, c.encrypted_size(size) - c.HEADER_SIZE), progress, sink)
    else:
        _pwrite_full(dst_fd, header, 0, writeback=False)
    return c.encrypted_size(size)


class _AuthFailed(Exception):
    def __init__(self, block: int) -> None:
        super().__init__(block)
        self.block = block


def decrypt_file(
    src_fd: int,
    dst_fd: int,
    key: bytes,
    name: str,
    progress: Progress | None = None,
    sink: Sink | None = None,
    *,
    direct: bool = False,
) -> int:
    """Decrypt the whole regular file `src_fd` into `dst_fd`; return the plaintext size.

    `dst_fd` must be a new, empty file. `sink` gets the authenticated plaintext in order;
    `direct` writes a large file with direct I/O where the filesystem allows it (the caller
    still fsyncs it: that flushes the disk's cache and the file's metadata).
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
    plain_size = c.decrypted_size(size)
    out = _DirectOutput(dst_fd, plain_size) if direct and plain_size >= DIRECT_MIN else None
    many = body > c._BATCH_SEALED

    def job(b: int, inb: Buffer, outb: Buffer) -> tuple[int, memoryview]:
        offset = c.HEADER_SIZE + b * c._BATCH_SEALED
        want = min(c._BATCH_SEALED, size - offset)
        if _pread_full(src_fd, inb, want, offset) != want:
            raise StorageError(f"{name}: the file shrank while it was being decrypted")
        first = b * c._BATCH_BLOCKS
        m, failed = open_batch(key, base + first, inb, want, outb, c.BLOCK_DATA_SIZE)
        if failed >= 0:
            raise _AuthFailed(first + failed)
        if out is not None:
            out.write(outb, m, b * c._BATCH_PLAIN)
        else:
            _pwrite_full(dst_fd, memoryview(outb)[:m], b * c._BATCH_PLAIN, many)
        return want, memoryview(outb)[:m]

    try:
        if body:
            batches = -(-body // c._BATCH_SEALED)
            if batches == 1:
                sizes = (body, plain_size)
            else:
                sizes = (c._BATCH_SEALED, c._BATCH_PLAIN)
            _run(batches, job, sizes, progress, sink, aligned=out is not None)
    except _AuthFailed as e:
        raise IntegrityError(c._auth_message(name, e.block)) from None
    finally:
        if out is not None:
            out.off()
    if out is not None:
        out.finish(plain_size)
    return plain_size
