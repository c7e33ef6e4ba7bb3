"""Pieces push, pull and ls share: progress reporting, hashing streams, the manifest object."""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import BinaryIO, Protocol

from seml.crypt import Cipher
from seml.errors import IntegrityError, StorageError
from seml.store import ObjectNotFound, ObjectStore
from seml.sync._manifest import (
    MANIFEST_NAME,
    MARKER_NAME,
    Manifest,
    ManifestKeys,
    PushMarker,
    open_manifest,
    open_marker,
)

__all__ = [
    "HashingReader",
    "HashingWriter",
    "PlainDigest",
    "SyncProgress",
    "read_manifest",
    "read_marker",
    "remote_id",
    "run_all",
    "warn",
]

log = logging.getLogger("seml.sync")


class SyncProgress(Protocol):
    """What push and pull report while they work. Called from several threads at once."""

    def start(self, action: str, files: int, total_bytes: int) -> None: ...

    def advance(self, nbytes: int) -> None: ...

    def file_done(self, path: str, status: str) -> None: ...

    def warn(self, message: str) -> None: ...

    def finish(self) -> None: ...


def warn(progress: SyncProgress | None, message: str) -> None:
    if progress is not None:
        progress.warn(message)
    else:
        log.warning("%s", message)


def remote_id(store: ObjectStore) -> str:
    """Identity of a remote for the local state: its URL plus the S3 endpoint, if any."""
    endpoint = getattr(store, "endpoint", None)
    return f"{store.url} @ {endpoint}" if endpoint else store.url


class HashingReader:
    """Reads a local file, hashing and counting the plaintext and reporting progress."""

    def __init__(self, f: BinaryIO, what: str, progress: SyncProgress | None) -> None:
        self._f = f
        self._what = what
        self._progress = progress
        self._sha = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        try:
            data = self._f.read(n)
        except OSError as e:
            raise StorageError(f"{self._what}: read failed: {e.strerror or e}") from e
        self._seen(memoryview(data))
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        try:
            n = self._f.readinto(b)  # type: ignore[attr-defined]
        except OSError as e:
            raise StorageError(f"{self._what}: read failed: {e.strerror or e}") from e
        if n:
            self._seen(memoryview(b)[:n])
        return int(n or 0)

    def update(self, view: memoryview) -> None:
        """Count and hash plaintext read from the file by other means (positional reads)."""
        self._seen(view)

    def _seen(self, view: memoryview) -> None:
        if view:
            self._sha.update(view)
            self.size += len(view)
            if self._progress is not None:
                self._progress.advance(len(view))

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class PlainDigest:
    """SHA-256 and size of plaintext seen in order (`update`), reported to the progress."""

    def __init__(self, progress: SyncProgress | None) -> None:
        self._progress = progress
        self._sha = hashlib.sha256()
        self.size = 0

    def update(self, data: bytes | memoryview) -> None:
        self._sha.update(data)
        n = len(data)
        self.size += n
        if self._progress is not None:
            self._progress.advance(n)

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


class HashingWriter(PlainDigest):
    """Writes decrypted plaintext to a temporary file, hashing it on the way."""

    def __init__(self, f: BinaryIO, what: str, progress: SyncProgress | None) -> None:
        super().__init__(progress)
        self._f = f
        self._what = what

    def write(self, data: bytes | memoryview) -> int:
        try:
            self._f.write(data)
        except OSError as e:
            raise StorageError(f"{self._what}: write failed: {e.strerror or e}") from e
        self.update(data)
        return len(data)


def _read_sealed(store: ObjectStore, cipher: Cipher, name: str, what: str) -> bytes | None:
    where = f"{store.url}{name}"
    out = io.BytesIO()
    try:
        with store.open(cipher.encrypt_name(name)) as src:
            cipher.decrypt_stream(src, out, name=where)
    except ObjectNotFound:
        return None
    except IntegrityError as e:
        raise IntegrityError(
            f"{e} (the {what} does not decrypt: wrong password or tampered)"
        ) from e
    return out.getvalue()


def read_manifest(
    store: ObjectStore, cipher: Cipher, keys: ManifestKeys
) -> tuple[Manifest, bytes] | None:
    """The remote's authenticated manifest and its sealed bytes, or None when it has none."""
    sealed = _read_sealed(store, cipher, MANIFEST_NAME, "manifest")
    if sealed is None:
        return None
    return open_manifest(sealed, keys, where=f"{store.url}{MANIFEST_NAME}"), sealed


def read_marker(store: ObjectStore, cipher: Cipher, keys: ManifestKeys) -> PushMarker | None:
    """The authenticated marker of a push in progress or interrupted, or None."""
    sealed = _read_sealed(store, cipher, MARKER_NAME, "push marker")
    if sealed is None:
        return None
    return open_marker(sealed, keys, where=f"{store.url}{MARKER_NAME}")


def manifest_digest(sealed: bytes) -> str:
    return hashlib.sha256(sealed).hexdigest()


def run_all(tasks: list[Callable[[], None]], workers: int, name: str) -> None:
    """Run `tasks` on `workers` threads. At the first failure (or Ctrl-C) cancel what has not
    started, wait for what has, and raise that failure."""
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
    try:
        futures = [pool.submit(t) for t in tasks]
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for fu in finished:
            exc = fu.exception()
            if exc is not None:
                raise exc
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
