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
from pathlib import Path
from typing import Any, BinaryIO, cast

from nacl import bindings as sodium
from nacl._sodium import ffi, lib  # in place, no copies (nacl.bindings copies twice)
from nacl.exceptions import CryptoError

from seml.crypt import Cipher
from seml.errors import IntegrityError, StorageError
from seml.volume._io import (
    HashingReader,
    RawWriter,
    file_identity,
    read_upto,
    regular_fd,
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


def seal_object(cipher: Cipher, key: bytes, raw: BinaryIO, out: int) -> tuple[int, str, bytes]:
    """Encrypt all of `raw` into the empty file `out` (not synced) under a fresh nonce;
    return (plaintext size, its SHA-256, the nonce). `key` is `cipher`'s data key.

    The digest is always that of the bytes encrypted: each block read is hashed from the same
    buffer it is encrypted from (one read of the file). A large file is encrypted in parallel
    batches, and once more as a stream if it was written in between.
    """
    fd = regular_fd(raw)
    done = None
    if fd is not None:
        done = _seal_small_file(fd, out, key)
        if done is None:
            done = _seal_large_file(cipher, raw, fd, out)
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


def _seal_large_file(cipher: Cipher, raw: BinaryIO, fd: int, out: int) -> tuple[int, str] | None:
    """Parallel batches at fixed offsets, each hashed (in order, on this thread, while later
    batches are encrypted) from the buffer it was encrypted from; None if the file was written
    meanwhile (what was sealed is still consistent, but it may be a mix of two versions)."""
    before = os.fstat(fd)
    digest = hashlib.sha256()
    try:
        with open(out, "wb", buffering=0, closefd=False) as sink:
            cipher.encrypt_file(raw, sink, sink=digest.update)
    except StorageError:
        if file_identity(os.fstat(fd)) != file_identity(before):
            return None  # it shrank while it was read
        raise
    if file_identity(os.fstat(fd)) != file_identity(before):
        return None
    return before.st_size, digest.hexdigest()


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


def _open_into(dst: Any, sealed: Any, length: int, nonce: bytes, key: bytes) -> bool:
    """Open the secretbox `sealed[:length]` (tag first) straight into `dst`, with no copy
    (PyNaCl's `crypto_secretbox_open` copies its input and output); False if it does not
    authenticate. `dst` must hold `length - 16` bytes."""
    out = ffi.from_buffer("unsigned char[]", dst, require_writable=True)
    src = ffi.from_buffer("unsigned char[]", sealed)
    return bool(lib.crypto_secretbox_open_easy(out, src, length, nonce, key) == 0)


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    got = 0
    while got < len(view):
        n = os.preadv(fd, [view[got:]], offset + got)
        if n == 0:
            break
        got += n
    return got


class ObjectReader:
    """Reads any byte range of one sealed object, authenticating each chunk it touches.

    The chunks a read touches are read with one `preadv` and opened in place; the last ones
    stay decrypted, so small reads within them cost no crypto."""

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
        self._sealed = bytearray()
        self._plain = bytearray()
        self._first = self._count = 0  # chunks [first, first + count) are in _plain

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self._size)
        if offset >= end:
            return b""
        first, last = offset // CHUNK, (end - 1) // CHUNK
        if not (self._first <= first and last < self._first + self._count):
            self._load(first, last - first + 1)
        start = self._first * CHUNK
        return bytes(memoryview(self._plain)[offset - start : end - start])

    def _load(self, first: int, count: int) -> None:
        self._count = 0
        plain = min(count * CHUNK, self._size - first * CHUNK)
        sealed = plain + count * _TAG
        if len(self._sealed) < sealed or len(self._plain) < count * CHUNK:
            self._sealed, self._plain = bytearray(sealed), bytearray(count * CHUNK)
        got = _pread_into(
            self._file.fileno(),
            memoryview(self._sealed)[:sealed],
            _HEADER + first * _SEALED_CHUNK,
        )
        for i in range(count):
            at = i * _SEALED_CHUNK
            n = min(_SEALED_CHUNK, sealed - at)
            nonce = ((self._base + first + i) % _NONCE_MOD).to_bytes(_NONCE, "little")
            if got < at + n or not _open_into(
                memoryview(self._plain)[i * CHUNK :],
                memoryview(self._sealed)[at:],
                n,
                nonce,
                self._key,
            ):
                raise IntegrityError(f"{self._label}: chunk {first + i} does not authenticate")
        self._first, self._count = first, count

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
        self._slot = bytearray(_SLOT)  # one slot, read or written (reused: no allocation)

    def read(self, offset: int, length: int) -> bytes:
        end = min(offset + length, self.size)
        if offset >= end:
            return b""
        out = bytearray(end - offset)
        self._read_into(offset, memoryview(out))
        return bytes(out)

    def write(self, offset: int, data: bytes) -> int:
        view = memoryview(data)
        position = offset
        while view:
            index, skip = divmod(position, CHUNK)
            n = min(CHUNK - skip, len(view))
            if n == CHUNK:  # a whole chunk: sealed straight from the caller's bytes
                if self._dirty is not None and self._dirty[0] == index:
                    self._dirty = None
                self._store(index, view[:n])
            else:
                chunk = self._writable(index)
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
        step = 16 * CHUNK
        for offset in range(0, size, step):
            plain = memoryview(reader.read(offset, step))
            for at in range(0, len(plain), CHUNK):
                self._store((offset + at) // CHUNK, plain[at : at + CHUNK])
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

    def _read_into(self, offset: int, view: memoryview) -> None:
        """Fill `view` with the plaintext at `offset` (all of it below `size`): whole chunks
        are opened straight into it; holes and short chunks read as zeros."""
        done = 0
        while done < len(view):
            index, skip = divmod(offset + done, CHUNK)
            n = min(CHUNK - skip, len(view) - done)
            dst = view[done : done + n]
            if n == CHUNK and not (self._dirty is not None and self._dirty[0] == index):
                got = self._open(index, dst)
            else:
                piece = self._chunk(index)[skip : skip + n]
                dst[: len(piece)] = piece
                got = len(piece)
            if got < n:
                dst[got:] = bytes(n - got)
            done += n

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
        plain = bytearray(CHUNK)
        return bytes(memoryview(plain)[: self._open(index, memoryview(plain))])

    def _open(self, index: int, dst: memoryview) -> int:
        """Open chunk `index` (as last stored) into `dst`; return its length (0: a hole)."""
        expected = bytes(self._nonces[index * _NONCE : (index + 1) * _NONCE])
        if len(expected) < _NONCE or not any(expected):
            return 0  # never written: a hole, whatever the file holds there
        slot = memoryview(self._slot)
        got = _pread_into(self._file.fileno(), slot, index * _SLOT)
        length = int.from_bytes(slot[:_LEN], "little") if got >= _LEN else 0
        if slot[_LEN : _LEN + _NONCE] != expected or got < _LEN + length:
            raise IntegrityError(
                f"scratch chunk {index} is not the one last written there (moved, copied or "
                "replayed while mounted)"
            )
        sealed = length - _NONCE
        if not _TAG <= sealed <= _SEALED_CHUNK or not _open_into(
            dst, slot[_LEN + _NONCE :], sealed, expected, self._key
        ):
            raise IntegrityError(f"scratch chunk {index} does not authenticate")
        return sealed - _TAG

    def _store(self, index: int, chunk: bytearray | memoryview) -> None:
        nonce = os.urandom(_NONCE)
        n = len(chunk)
        slot = self._slot
        slot[:_LEN] = (_NONCE + _TAG + n).to_bytes(_LEN, "little")
        slot[_LEN : _LEN + _NONCE] = nonce
        out = ffi.from_buffer("unsigned char[]", slot, require_writable=True)
        if lib.crypto_secretbox_easy(
            out + _LEN + _NONCE, ffi.from_buffer(chunk), n, nonce, self._key
        ):
            raise IntegrityError("scratch chunk could not be sealed")  # pragma: no cover
        os.pwrite(self._file.fileno(), memoryview(slot)[: _LEN + _NONCE + _TAG + n], index * _SLOT)
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
        n = max(0, min(len(view), self._scratch.size - self._offset))
        self._scratch.flush()
        self._scratch._read_into(self._offset, view[:n])
        self._offset += n
        return n
