"""Random access to encrypted data, for the FUSE mount: sealed objects and scratch files.

A sealed object is in rclone's format (a 32-byte header with the object's nonce, then 64 KiB
chunks each sealed with XSalsa20-Poly1305 under nonce + chunk index), so any chunk can be
opened on its own; its position binds it, and the pinned nonce binds the object to the
manifest. Scratch files hold what a mounted volume's command writes, encrypted under a key that
lives only as long as the mount: fixed-size slots (record length, nonce, sealed chunk), each
chunk sealed under a fresh random nonce every time it is written (a counter nonce would repeat
when a chunk is rewritten).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from nacl import bindings as sodium
from nacl.exceptions import CryptoError

from seml.errors import IntegrityError

__all__ = ["CHUNK", "ObjectReader", "ScratchFile"]

CHUNK = 64 * 1024
_TAG = 16
_NONCE = 24
_HEADER = 8 + _NONCE
_SEALED_CHUNK = CHUNK + _TAG
_LEN = 4  # a slot's record length: a shorter rewrite must not read stale bytes behind it
_SLOT = _LEN + _NONCE + _SEALED_CHUNK


class ObjectReader:
    """Reads any byte range of one sealed object, authenticating each chunk it touches."""

    def __init__(self, path: Path, data_key: bytes, nonce: bytes, size: int, *, label: str) -> None:
        self._label = label
        self._key = data_key
        self._size = size
        self._file = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        header = self._file.read(_HEADER)
        expected = _HEADER + size + -(-size // CHUNK) * _TAG
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
        self._file = open(path, "w+b", buffering=0)  # noqa: SIM115 - closed by close()
        self._path = path
        self._dirty: tuple[int, bytearray] | None = None  # write-back cache of one chunk

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
            self._file.truncate((index + (1 if keep else 0)) * _SLOT)
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
        slot = os.pread(self._file.fileno(), _SLOT, index * _SLOT)
        length = int.from_bytes(slot[:_LEN], "little") if len(slot) >= _LEN else 0
        if not length:
            return b""  # never written: a hole
        record = slot[_LEN : _LEN + length]
        try:
            plain: bytes = sodium.crypto_secretbox_open(record[_NONCE:], record[:_NONCE], self._key)
        except CryptoError:
            raise IntegrityError(f"scratch chunk {index} does not authenticate") from None
        return plain

    def _store(self, index: int, chunk: bytearray) -> None:
        nonce = os.urandom(_NONCE)
        record = nonce + sodium.crypto_secretbox(bytes(chunk), nonce, self._key)
        os.pwrite(self._file.fileno(), len(record).to_bytes(_LEN, "little") + record, index * _SLOT)


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
