"""Sealed objects, whole (seal and unseal) or by random access (the FUSE mount), and scratch files.

A sealed object is in rclone's format (a 32-byte header with the object's nonce, then 64 KiB
chunks each sealed with XSalsa20-Poly1305 under nonce + chunk index), so any chunk can be
opened on its own; its position binds it, and the pinned nonce binds the object to the
manifest. Scratch files hold what a mounted volume's command writes, encrypted under a key that
lives only as long as the mount: fixed-size slots (record length, nonce, sealed chunk), each
chunk sealed under a fresh random nonce every time it is written (a counter nonce would repeat
when a chunk is rewritten). The mount remembers, in memory, the nonce of each chunk's last
write and accepts a slot only with it: a chunk moved to another position or file, copied, or
replayed from an earlier write is refused, as is a slot where nothing was written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO, cast

from nacl import bindings as sodium
from nacl.exceptions import CryptoError

from seml.crypt import Cipher
from seml.errors import IntegrityError, StorageError
from seml.volume._io import (
    HashingReader,
    RawWriter,
    file_identity,
    read_upto,
    regular_fd,
    sha256_fd,
    write_all,
)

__all__ = [
    "CHUNK",
    "SMALL",
    "ObjectReader",
    "ScratchFile",
    "open_small",
    "seal_object",
    "seal_small",
    "sealed_size",
    "unseal_object",
]

CHUNK = 64 * 1024
_TAG = 16
_NONCE = 24
_HEADER = 8 + _NONCE
_SEALED_CHUNK = CHUNK + _TAG
_MAGIC = b"RCLONE\x00\x00"
_NONCE_MOD = 1 << (8 * _NONCE)
# Files below this size are sealed and opened whole, here: the parallel file path of the crypt
# package sets up megabyte batch buffers per file, which costs more than a small file's crypto.
SMALL = 1 << 20
_LEN = 4  # a slot's record length: a shorter rewrite must not read stale bytes behind it
_SLOT = _LEN + _NONCE + _SEALED_CHUNK


def sealed_size(size: int) -> int:
    return _HEADER + size + -(-size // CHUNK) * _TAG


def seal_small(plain: bytes, key: bytes, nonce: bytes) -> bytes:
    """The whole sealed object (rclone's format) for `plain`: header, then each 64 KiB chunk
    sealed under nonce + its index."""
    base = int.from_bytes(nonce, "little")
    out = [_MAGIC, nonce]
    for index, offset in enumerate(range(0, len(plain), CHUNK)):
        chunk_nonce = ((base + index) % _NONCE_MOD).to_bytes(_NONCE, "little")
        out.append(sodium.crypto_secretbox(plain[offset : offset + CHUNK], chunk_nonce, key))
    return b"".join(out)


def open_small(sealed: bytes, key: bytes, nonce: bytes, size: int, *, label: str) -> bytes:
    """The plaintext of a whole sealed object that must hold `size` bytes under `nonce`;
    IntegrityError naming `label` if it does not, in any way."""
    if sealed[:_HEADER] != _MAGIC + nonce:
        raise IntegrityError(
            f"{label} is not the object its manifest entry pins (swapped, replaced or an old copy)"
        )
    if len(sealed) != sealed_size(size):
        raise IntegrityError(
            f"{label} is {len(sealed)} bytes sealed, not the {sealed_size(size)} its "
            f"{size} bytes need (truncated, swapped or replaced)"
        )
    base = int.from_bytes(nonce, "little")
    out = []
    for index, offset in enumerate(range(_HEADER, len(sealed), _SEALED_CHUNK)):
        chunk_nonce = ((base + index) % _NONCE_MOD).to_bytes(_NONCE, "little")
        try:
            out.append(
                sodium.crypto_secretbox_open(
                    sealed[offset : offset + _SEALED_CHUNK], chunk_nonce, key
                )
            )
        except CryptoError:
            raise IntegrityError(
                f"{label}: authentication failed at chunk {index} (the object was changed)"
            ) from None
    return b"".join(out)


def seal_object(
    cipher: Cipher, key: bytes, raw: BinaryIO, out: int, hasher: ThreadPoolExecutor
) -> tuple[int, str, bytes]:
    """Encrypt all of `raw` into the empty file `out` (not synced) under a fresh nonce;
    return (plaintext size, its SHA-256, the nonce). `key` is `cipher`'s data key and `hasher`
    a pool for hashing alongside the encryption.

    The digest is always that of the bytes encrypted: a small file is read once; a large one is
    read twice, concurrently (encrypted in parallel batches, hashed on `hasher`), and encrypted
    once more as a stream if it was written in between.
    """
    fd = regular_fd(raw)
    done = None
    if fd is not None:
        done = _seal_small_file(fd, out, key)
        if done is None:
            done = _seal_large_file(cipher, raw, fd, out, hasher)
        if done is None:
            os.ftruncate(out, 0)
            raw.seek(0)
    if done is None:
        with (
            contextlib.closing(HashingReader(raw)) as reader,
            open(out, "wb", buffering=0, closefd=False) as sink,
        ):
            cipher.encrypt_stream(cast(BinaryIO, reader), cast(BinaryIO, RawWriter(sink)))
            done = reader.size, reader.hexdigest()
    header = os.pread(out, _HEADER, 0)
    return done[0], done[1], header[8:_HEADER]


def _seal_small_file(fd: int, out: int, key: bytes) -> tuple[int, str] | None:
    plain = read_upto(fd, SMALL)
    if len(plain) >= SMALL:
        return None
    write_all(out, seal_small(plain, key, secrets.token_bytes(_NONCE)))
    return len(plain), hashlib.sha256(plain).hexdigest()


def _seal_large_file(
    cipher: Cipher, raw: BinaryIO, fd: int, out: int, hasher: ThreadPoolExecutor
) -> tuple[int, str] | None:
    """Parallel batches at fixed offsets, hashed from the same descriptor on another thread (no
    block is copied for the hash); None if the file was written meanwhile."""
    before = os.fstat(fd)
    hashing = hasher.submit(sha256_fd, fd, before.st_size)
    try:
        with open(out, "wb", buffering=0, closefd=False) as sink:
            cipher.encrypt_file(raw, sink)
    except BaseException as e:
        if not hashing.cancel():
            hashing.exception()  # let it finish before the caller closes the source
        if isinstance(e, StorageError) and file_identity(os.fstat(fd)) != file_identity(before):
            return None  # it shrank while it was read
        raise
    digest, hashed = hashing.result()
    if hashed != before.st_size or file_identity(os.fstat(fd)) != file_identity(before):
        return None
    return before.st_size, digest


def unseal_object(
    cipher: Cipher,
    key: bytes,
    src: BinaryIO,
    raw: io.FileIO,
    *,
    nonce: bytes,
    size: int,
    thorough: bool,
    label: str,
) -> tuple[int, str | None]:
    """Decrypt the sealed object `src` (pinned `nonce`, header already checked) into the empty
    file `raw` (opened for reading too); return (plaintext size, its SHA-256 if `thorough`).
    Every chunk is authenticated; IntegrityError naming `label` otherwise."""
    if size < SMALL:  # whole, in memory
        sealed = src.read(sealed_size(size) + 1)  # one more: a longer object is refused
        plain = open_small(sealed, key, nonce, size, label=label)
        write_all(raw.fileno(), plain)
        return len(plain), hashlib.sha256(plain).hexdigest() if thorough else None
    # Parallel and positional: batches of chunks are opened and written at their offsets.
    # The hash sees the authenticated plaintext in order as it is written (no second read).
    digest = hashlib.sha256() if thorough else None
    done = cipher.decrypt_file(src, raw, name=label, sink=digest.update if digest else None)
    return done, digest.hexdigest() if digest else None


class ObjectReader:
    """Reads any byte range of one sealed object, authenticating each chunk it touches."""

    def __init__(self, path: Path, data_key: bytes, nonce: bytes, size: int, *, label: str) -> None:
        self._label = label
        self._key = data_key
        self._size = size
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        header = self._file.read(_HEADER)
        expected = sealed_size(size)
        if header[8:] != nonce or os.fstat(self._file.fileno()).st_size != expected:
            self._file.close()
            raise IntegrityError(f"{label} is not the object its manifest entry pins")
        self._base = int.from_bytes(nonce, "little")
        self._cached: tuple[int, bytes] | None = None

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        out = bytearray()
        while offset < end:
            index, skip = divmod(offset, CHUNK)
            chunk = self._chunk(index)
            piece = chunk[skip : skip + (end - offset)]
            out += piece
            offset += len(piece)
        return bytes(out)

    def _chunk(self, index: int) -> bytes:
        if self._cached is not None and self._cached[0] == index:
            return self._cached[1]
        sealed = os.pread(self._file.fileno(), _SEALED_CHUNK, _HEADER + index * _SEALED_CHUNK)
        nonce = ((self._base + index) % (1 << 192)).to_bytes(_NONCE, "little")
        try:
            plain: bytes = sodium.crypto_secretbox_open(sealed, nonce, self._key)
        except CryptoError:
            raise IntegrityError(f"{self._label}: chunk {index} does not authenticate") from None
        self._cached = (index, plain)
        return plain

    def close(self) -> None:
        self._file.close()


class ScratchFile:
    """A mutable, encrypted, disk-backed file; its plaintext exists only chunk by chunk."""

    def __init__(self, path: Path, key: bytes) -> None:
        self._key = key
        self.size = 0
        flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        self._file = open(os.open(path, flags, 0o600), "w+b", buffering=0)  # noqa: SIM115
        self._path = path
        self._dirty: tuple[int, bytearray] | None = None  # write-back cache of one chunk
        self._nonces = bytearray()  # chunk i's last nonce at [24i, 24i+24); zeros: never written

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        out = bytearray()
        while offset < end:
            index, skip = divmod(offset, CHUNK)
            piece = self._chunk(index)[skip : skip + (end - offset)]
            piece += bytes(min(CHUNK - skip, end - offset) - len(piece))  # a hole reads as zeros
            out += piece
            offset += len(piece)
        return bytes(out)

    def write(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        position = offset
        while view:
            index, skip = divmod(position, CHUNK)
            chunk = self._writable(index)
            n = min(CHUNK - skip, len(view))
            if len(chunk) < skip + n:
                chunk.extend(bytes(skip + n - len(chunk)))
            chunk[skip : skip + n] = view[:n]
            view = view[n:]
            position += n
        self.size = max(self.size, position)
        return len(data)

    def truncate(self, length: int) -> None:
        self.flush()
        if length < self.size:
            index, keep = divmod(length, CHUNK)
            if keep:
                chunk = bytearray(self._chunk(index)[:keep])
                self._store(index, chunk)
            kept = index + (1 if keep else 0)
            self._file.truncate(kept * _SLOT)
            del self._nonces[kept * _NONCE :]
        self.size = length

    def fill_from(self, reader: ObjectReader, size: int) -> None:
        """Copy a sealed object's plaintext in (copy-on-write), one chunk at a time."""
        for index in range(-(-size // CHUNK)):
            self._store(index, bytearray(reader.read(index * CHUNK, CHUNK)))
        self.size = size

    def flush(self) -> None:
        if self._dirty is not None:
            index, chunk = self._dirty
            self._dirty = None
            self._store(index, chunk)

    def stream(self) -> io.RawIOBase:
        """The plaintext from the start, as a readable stream (for sealing)."""
        self.flush()
        return _ScratchStream(self)

    def close(self) -> None:
        self._file.close()
        self._path.unlink(missing_ok=True)

    def _writable(self, index: int) -> bytearray:
        if self._dirty is not None and self._dirty[0] == index:
            return self._dirty[1]
        self.flush()
        chunk = bytearray(self._chunk(index))
        self._dirty = (index, chunk)
        return chunk

    def _chunk(self, index: int) -> bytes:
        if self._dirty is not None and self._dirty[0] == index:
            return bytes(self._dirty[1])
        expected = bytes(self._nonces[index * _NONCE : (index + 1) * _NONCE])
        if len(expected) < _NONCE or not any(expected):
            return b""  # never written: a hole, whatever the file holds there
        slot = os.pread(self._file.fileno(), _SLOT, index * _SLOT)
        length = int.from_bytes(slot[:_LEN], "little") if len(slot) >= _LEN else 0
        record = slot[_LEN : _LEN + length]
        if record[:_NONCE] != expected:
            raise IntegrityError(
                f"scratch chunk {index} is not the one last written there (moved, copied or "
                "replayed while mounted)"
            )
        try:
            plain: bytes = sodium.crypto_secretbox_open(record[_NONCE:], record[:_NONCE], self._key)
        except CryptoError:
            raise IntegrityError(f"scratch chunk {index} does not authenticate") from None
        return plain

    def _store(self, index: int, chunk: bytearray) -> None:
        nonce = os.urandom(_NONCE)
        record = nonce + sodium.crypto_secretbox(bytes(chunk), nonce, self._key)
        os.pwrite(self._file.fileno(), len(record).to_bytes(_LEN, "little") + record, index * _SLOT)
        end = (index + 1) * _NONCE
        if len(self._nonces) < end:
            self._nonces.extend(bytes(end - len(self._nonces)))
        self._nonces[index * _NONCE : end] = nonce


class _ScratchStream(io.RawIOBase):
    def __init__(self, scratch: ScratchFile) -> None:
        super().__init__()
        self._scratch = scratch
        self._offset = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._scratch.read(self._offset, len(view))
        view[: len(data)] = data
        self._offset += len(data)
        return len(data)
