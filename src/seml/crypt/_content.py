"""rclone's content format, streamed both ways in constant memory.

A file is `RCLONE\\0\\0`, a 24-byte random nonce, then the plaintext in 64 KiB chunks, each sealed
with XSalsa20-Poly1305 (16-byte tag first) under the data key, the nonce incremented as a
little-endian counter after every chunk. An empty file is the 32-byte header alone.

Chunks are sealed or opened in batches on a small thread pool (libsodium runs without the GIL)
while the calling thread reads and writes; a bounded set of preallocated buffers keeps memory
at a few MiB whatever the file size, and output always comes out in order.
"""

from __future__ import annotations

import io
from collections import deque
from collections.abc import Generator, Iterator
from threading import Lock
from typing import TYPE_CHECKING, BinaryIO

from seml.crypt._secretbox import NONCE_SIZE, TAG_SIZE, open_batch, seal_batch
from seml.errors import IntegrityError

if TYPE_CHECKING:  # `concurrent.futures` (with `logging`) is imported when a pool starts
    from concurrent.futures import Future, ThreadPoolExecutor

__all__ = [
    "BLOCK_DATA_SIZE",
    "HEADER_SIZE",
    "MAGIC",
    "EncryptingReader",
    "decrypted_size",
    "encrypted_size",
    "iter_decrypt",
    "iter_encrypt",
]

MAGIC = b"RCLONE\x00\x00"
HEADER_SIZE = len(MAGIC) + NONCE_SIZE
BLOCK_DATA_SIZE = 64 * 1024
BLOCK_SIZE = BLOCK_DATA_SIZE + TAG_SIZE

_BATCH_BLOCKS = 16  # 1 MiB of plaintext per task: large I/O, little per-chunk Python work
_WORKERS = 4  # like rclone's 4 download streams; tasks also wait on I/O, so more than cores
_DEPTH = _WORKERS + 2  # batches in flight; bounds memory at about 2 * _DEPTH MiB
_BATCH_PLAIN = _BATCH_BLOCKS * BLOCK_DATA_SIZE
_BATCH_SEALED = _BATCH_BLOCKS * BLOCK_SIZE

_pool: ThreadPoolExecutor | None = None
_pool_lock = Lock()


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            from concurrent.futures import ThreadPoolExecutor

            _pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="seml-crypt")
        return _pool


def encrypted_size(plain_size: int) -> int:
    """Size of the rclone-encrypted form of `plain_size` bytes."""
    if plain_size < 0:
        raise ValueError("size must not be negative")
    blocks = -(-plain_size // BLOCK_DATA_SIZE)
    return HEADER_SIZE + plain_size + blocks * TAG_SIZE


def decrypted_size(encrypted_size: int) -> int:
    """Plaintext size of an encrypted object; IntegrityError when no plaintext has that size."""
    body = encrypted_size - HEADER_SIZE
    if body < 0:
        raise IntegrityError(
            f"an encrypted size of {encrypted_size} bytes is too short for the 32-byte header"
        )
    blocks, residue = divmod(body, BLOCK_SIZE)
    if residue and residue <= TAG_SIZE:
        raise IntegrityError(
            f"an encrypted size of {encrypted_size} bytes ends in a block no longer than its tag"
        )
    return blocks * BLOCK_DATA_SIZE + (residue - TAG_SIZE if residue else 0)


def _read_full(src: BinaryIO, buf: bytearray) -> int:
    """Fill `buf` from `src` unless the stream ends first; return how many bytes were read."""
    view = memoryview(buf)
    total = 0
    readinto = getattr(src, "readinto", None)
    while total < len(buf):
        if readinto is not None:
            n = readinto(view[total:])
            if n is None:  # a non-blocking stream with nothing ready: not supported
                raise BlockingIOError("source stream is non-blocking and has no data ready")
        else:
            data = src.read(len(buf) - total)
            n = len(data)
            view[total : total + n] = data
        if not n:
            break
        total += n
    return total


def iter_encrypt(src: BinaryIO, key: bytes, nonce: bytes) -> Generator[memoryview, None, None]:
    """Yield the encrypted stream in order. Each view is valid until the next item is requested."""
    if len(nonce) != NONCE_SIZE:
        raise ValueError("nonce must be 24 bytes")
    yield memoryview(MAGIC + nonce)
    base = int.from_bytes(nonce, "little")
    first_in, first_out = bytearray(_BATCH_PLAIN), bytearray(_BATCH_SEALED)
    n = _read_full(src, first_in)
    if n < _BATCH_PLAIN:  # small file: no hand-off to the pool
        if n:
            m = seal_batch(key, base, first_in, n, first_out, BLOCK_DATA_SIZE)
            yield memoryview(first_out)[:m]
        return
    pool = _executor()
    free = [(bytearray(_BATCH_PLAIN), bytearray(_BATCH_SEALED)) for _ in range(_DEPTH - 1)]
    pending: deque[tuple[Future[int], bytearray, bytearray]] = deque()
    index = 0
    eof = False
    try:
        pending.append(
            (
                pool.submit(seal_batch, key, base, first_in, n, first_out, BLOCK_DATA_SIZE),
                first_in,
                first_out,
            )
        )
        index += _BATCH_BLOCKS
        while pending:
            while not eof and free:
                inb, outb = free.pop()
                n = _read_full(src, inb)
                eof = n < _BATCH_PLAIN
                if n == 0:
                    free.append((inb, outb))
                    break
                fut = pool.submit(seal_batch, key, base + index, inb, n, outb, BLOCK_DATA_SIZE)
                pending.append((fut, inb, outb))
                index += -(-n // BLOCK_DATA_SIZE)
            fut, inb, outb = pending.popleft()
            m = fut.result()
            yield memoryview(outb)[:m]
            free.append((inb, outb))
    finally:
        for fut, _, _ in pending:
            fut.cancel()
        for fut, _, _ in pending:
            if not fut.cancelled():
                fut.exception()  # wait: the worker may still be writing into our buffers


def iter_decrypt(src: BinaryIO, key: bytes, name: str) -> Iterator[memoryview]:
    """Yield the plaintext in order, each view only after its chunks authenticated.

    Raises IntegrityError naming `name` and the reason at the first problem; the views yielded
    before it are authenticated plaintext of the leading chunks.
    """
    header = bytearray(HEADER_SIZE)
    n = _read_full(src, header)
    if n < HEADER_SIZE:
        raise IntegrityError(
            f"{name}: too short to be an rclone-encrypted file "
            f"({n} bytes; the header alone is {HEADER_SIZE})"
        )
    if header[: len(MAGIC)] != MAGIC:
        raise IntegrityError(f"{name}: not an rclone-encrypted file (bad magic in the header)")
    base = int.from_bytes(header[len(MAGIC) :], "little")
    pool: ThreadPoolExecutor | None = None
    # Buffers are made on demand: a small file (most of a dataset tree) needs one pair, and
    # zero-filling _DEPTH pairs of batch buffers per file was a third of a pull's time.
    free: list[tuple[bytearray, bytearray]] = []
    allocated = 0
    pending: deque[tuple[Future[tuple[int, int]], bytearray, bytearray, int]] = deque()
    index = 0
    eof = False
    try:
        while True:
            while not eof and (free or allocated < _DEPTH):
                if not free:
                    free.append((bytearray(_BATCH_SEALED), bytearray(_BATCH_PLAIN)))
                    allocated += 1
                inb, outb = free.pop()
                n = _read_full(src, inb)
                eof = n < _BATCH_SEALED
                if n == 0:
                    free.append((inb, outb))
                    break
                residue = n % BLOCK_SIZE
                if residue and residue <= TAG_SIZE:
                    block = index + n // BLOCK_SIZE
                    raise IntegrityError(
                        f"{name}: block {block} is {residue} bytes, no longer than its "
                        f"{TAG_SIZE}-byte tag (file truncated or garbled)"
                    )
                if pool is None and not (eof and not pending):
                    pool = _executor()
                if pool is None:
                    m, failed = open_batch(key, base + index, inb, n, outb, BLOCK_DATA_SIZE)
                    from concurrent.futures import Future

                    done: Future[tuple[int, int]] = Future()
                    done.set_result((m, failed))
                    fut = done
                else:
                    fut = pool.submit(open_batch, key, base + index, inb, n, outb, BLOCK_DATA_SIZE)
                pending.append((fut, inb, outb, index))
                index += -(-n // BLOCK_SIZE)
            if not pending:
                return
            fut, inb, outb, first = pending.popleft()
            m, failed = fut.result()
            if failed >= 0:
                raise IntegrityError(_auth_message(name, first + failed))
            yield memoryview(outb)[:m]
            free.append((inb, outb))
    finally:
        for fut, _, _, _ in pending:
            fut.cancel()
        for fut, _, _, _ in pending:
            if not fut.cancelled():
                fut.exception()


def _auth_message(name: str, block: int) -> str:
    offset = HEADER_SIZE + block * BLOCK_SIZE
    if block == 0:
        return (
            f"{name}: authentication failed at block 0 (byte {offset}): wrong password likely, "
            "or the file was changed"
        )
    return (
        f"{name}: authentication failed at block {block} (byte {offset}): "
        "the file was changed or corrupted"
    )


class EncryptingReader(io.RawIOBase):
    """A read-only stream of ciphertext over a plaintext stream (e.g. for boto3 upload_fileobj)."""

    def __init__(self, src: BinaryIO, key: bytes, nonce: bytes) -> None:
        super().__init__()
        self._chunks: Generator[memoryview, None, None] = iter_encrypt(src, key, nonce)
        self._current = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        out = memoryview(buffer).cast("B")
        while not self._current:
            nxt = next(self._chunks, None)
            if nxt is None:
                return 0
            self._current = nxt
        n = min(len(out), len(self._current))
        out[:n] = self._current[:n]
        self._current = self._current[n:]
        return n

    def close(self) -> None:
        if not self.closed:
            self._current = memoryview(b"")
            self._chunks.close()
        super().close()
