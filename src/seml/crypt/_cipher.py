"""`Cipher`: the keys of one rclone crypt remote, and what they do to names and content."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO, Literal

from seml.crypt import _content, _files
from seml.crypt._keys import DATA_KEY_SIZE, NAME_KEY_SIZE, NAME_TWEAK_SIZE, derive_keys
from seml.crypt._names import NameCipher
from seml.crypt._secretbox import NONCE_SIZE
from seml.errors import StorageError, UsageError

__all__ = ["Cipher", "CryptOptions"]

_ENCRYPTIONS = ("standard", "obfuscate", "off")
_ENCODINGS = ("base32", "base64")


@dataclass(frozen=True)
class CryptOptions:
    """rclone crypt's name options (`filename_encryption`, `filename_encoding`, ...)."""

    filename_encryption: Literal["standard", "obfuscate", "off"] = "standard"
    filename_encoding: Literal["base32", "base64"] = "base32"
    directory_name_encryption: bool = True

    def __post_init__(self) -> None:
        if self.filename_encryption not in _ENCRYPTIONS:
            raise UsageError(
                f"filename_encryption must be one of {', '.join(_ENCRYPTIONS)}, "
                f"not {self.filename_encryption!r}"
            )
        if self.filename_encoding not in _ENCODINGS:
            raise UsageError(
                f"filename_encoding must be one of {', '.join(_ENCODINGS)}, "
                f"not {self.filename_encoding!r} (rclone's base32768 is not supported)"
            )


class Cipher:
    """Content and name encryption of one rclone crypt remote. Keys never appear in repr()."""

    options: CryptOptions

    def __init__(
        self, password: str, password2: str = "", options: CryptOptions = CryptOptions()
    ) -> None:
        if not password:
            raise UsageError("the crypt password must not be empty")
        self._setup(*derive_keys(password, password2), options)

    @classmethod
    def from_keys(
        cls,
        data_key: bytes,
        name_key: bytes,
        name_tweak: bytes,
        options: CryptOptions = CryptOptions(),
    ) -> Cipher:
        """Build a cipher from already-derived keys (e.g. delivered by the CAS)."""
        if (len(data_key), len(name_key), len(name_tweak)) != (
            DATA_KEY_SIZE,
            NAME_KEY_SIZE,
            NAME_TWEAK_SIZE,
        ):
            raise UsageError("crypt keys must be 32 (data), 32 (name) and 16 (tweak) bytes")
        self = cls.__new__(cls)
        self._setup(bytes(data_key), bytes(name_key), bytes(name_tweak), options)
        return self

    def _setup(
        self, data_key: bytes, name_key: bytes, name_tweak: bytes, options: CryptOptions
    ) -> None:
        self.options = options
        self._data_key = data_key
        self._names = NameCipher(
            name_key,
            name_tweak,
            options.filename_encryption,
            options.filename_encoding,
            options.directory_name_encryption,
        )

    def __repr__(self) -> str:
        return f"Cipher(options={self.options!r})"

    # -- names -------------------------------------------------------------------------------

    def encrypt_name(self, path: str) -> str:
        """Encrypt a '/'-separated relative file path as rclone names the object."""
        return self._names.encrypt_file_name(path)

    def decrypt_name(self, path: str) -> str:
        """Decrypt an encrypted file path; IntegrityError naming it if a segment does not decode."""
        return self._names.decrypt_file_name(path)

    def encrypt_dir_name(self, path: str) -> str:
        """Encrypt a directory path (kept as is in 'off' mode or without directory encryption)."""
        return self._names.encrypt_dir_name(path)

    def decrypt_dir_name(self, path: str) -> str:
        """Inverse of `encrypt_dir_name`."""
        return self._names.decrypt_dir_name(path)

    # -- content -----------------------------------------------------------------------------

    def encrypt_stream(self, src: BinaryIO, dst: BinaryIO, *, nonce: bytes | None = None) -> int:
        """Encrypt all of `src` into `dst`; return the bytes written.

        `nonce` is for reproducing a known file (tests, cryptcheck); leave it None otherwise:
        reusing a nonce with the same key breaks confidentiality.
        """
        written = 0
        try:
            for chunk in _content.iter_encrypt(src, self._data_key, self._nonce(nonce)):
                dst.write(chunk)
                written += len(chunk)
        except OSError as e:
            raise StorageError(f"encrypting a stream failed after {written} bytes: {e}") from e
        return written

    def decrypt_stream(self, src: BinaryIO, dst: BinaryIO, *, name: str) -> int:
        """Decrypt all of `src` into `dst`; return the plaintext bytes written.

        Raises IntegrityError naming `name` on any problem. Plaintext already written to `dst`
        is authenticated but incomplete then: write to a temporary file and discard it on error.
        """
        written = 0
        try:
            for chunk in _content.iter_decrypt(src, self._data_key, name):
                dst.write(chunk)
                written += len(chunk)
        except OSError as e:
            raise StorageError(f"{name}: decrypting failed after {written} bytes: {e}") from e
        return written

    def encrypt_file(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        *,
        nonce: bytes | None = None,
        progress: Callable[[int], None] | None = None,
        sink: Callable[[memoryview], object] | None = None,
        writeback: bool = True,
    ) -> int:
        """Encrypt the whole regular file `src` into `dst`, both open in binary mode.

        Faster than `encrypt_stream` for files on disk: batches are read, sealed and written at
        their offsets in parallel. Works on whole files from offset 0, ignoring (and not moving)
        the file positions. `progress` gets the plaintext bytes done, `sink` the plaintext
        itself, in order, on this thread (e.g. a hash's update). Returns bytes written.
        `writeback=False` for output that will not be flushed: a large file's batches are then
        left to the page cache instead of being sent to the disk as they are written.
        """
        try:
            return _files.encrypt_file(
                src.fileno(),
                dst.fileno(),
                self._data_key,
                self._nonce(nonce),
                progress,
                sink,
                writeback=writeback,
            )
        except OSError as e:
            raise StorageError(f"encrypting {getattr(src, 'name', 'a file')} failed: {e}") from e

    def decrypt_file(
        self,
        src: BinaryIO,
        dst: BinaryIO,
        *,
        name: str,
        progress: Callable[[int], None] | None = None,
        sink: Callable[[memoryview], object] | None = None,
        direct: bool = False,
    ) -> int:
        """Decrypt the whole regular file `src` into the new, empty file `dst` (see
        `encrypt_file`); `sink` gets the authenticated plaintext in order.

        `direct`: write a large file with direct I/O where the filesystem has it (no copy into
        the page cache, nothing left dirty for the caller's fsync; the file is then not cached
        for readers). IntegrityError naming `name` on any problem; `dst` then holds partial
        (authenticated) plaintext, to be discarded. `progress` gets the encrypted bytes done.
        """
        try:
            return _files.decrypt_file(
                src.fileno(), dst.fileno(), self._data_key, name, progress, sink, direct=direct
            )
        except OSError as e:
            raise StorageError(f"{name}: decrypting failed: {e}") from e

    def encrypting_reader(self, src: BinaryIO, *, nonce: bytes | None = None) -> BinaryIO:
        """A file-like object whose .read(n) returns the ciphertext of `src`."""
        raw = _content.EncryptingReader(src, self._data_key, self._nonce(nonce))
        return io.BufferedReader(raw, buffer_size=1 << 20)

    @staticmethod
    def encrypted_size(plain_size: int) -> int:
        """Size in bytes of the encrypted form of a `plain_size`-byte file."""
        return _content.encrypted_size(plain_size)

    @staticmethod
    def decrypted_size(encrypted_size: int) -> int:
        """Plaintext size of an encrypted file; IntegrityError if no plaintext has that size."""
        return _content.decrypted_size(encrypted_size)

    @staticmethod
    def _nonce(nonce: bytes | None) -> bytes:
        if nonce is None:
            return os.urandom(NONCE_SIZE)
        if len(nonce) != NONCE_SIZE:
            raise UsageError(f"nonce must be {NONCE_SIZE} bytes, not {len(nonce)}")
        return bytes(nonce)
