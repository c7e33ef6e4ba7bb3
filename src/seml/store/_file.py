"""`file://` object storage: one file per object under a root folder, written atomically."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from seml._fs import atomic_writer, is_temp
from seml.errors import StorageError
from seml.store._base import ObjectInfo, ObjectNotFound, check_name

__all__ = ["FileStore"]

_COPY_BUFFER = 1 << 20


class FileStore:
    """Objects as files under `root` (the layout rclone's local backend uses, so an rclone
    crypt remote over the same folder reads them). Writes go to a temporary file in the same
    folder and are renamed over the final name only when complete."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri() + "/"

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def put(self, name: str, src: BinaryIO, *, mtime: float | None = None) -> int:
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StorageError(f"{self.url}{name}: cannot write object: {e.strerror or e}") from e
        # Atomic, not flushed (like rclone's local backend): push writes its manifest last, and
        # pull refuses any object the manifest does not vouch for.
        with atomic_writer(path, mode=0o600, sync=False) as out:
            shutil.copyfileobj(src, out, _COPY_BUFFER)
            size = out.tell()
            if mtime is not None:
                os.utime(out.fileno(), (mtime, mtime))
        return size

    def open(
        self, name: str, *, start: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        path = self._path(name)
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed by the context manager below
        except FileNotFoundError as e:
            raise ObjectNotFound(f"{self.url}{name}: no such object") from e
        except OSError as e:
            raise StorageError(f"{self.url}{name}: cannot read object: {e.strerror or e}") from e
        return _ranged(f, start, length, f"{self.url}{name}")

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
        try:
            for dirpath, dirnames, filenames in os.walk(self.root, onerror=_raise):
                dirnames.sort()
                rel = Path(dirpath).relative_to(self.root).as_posix()
                base = "" if rel == "." else rel + "/"
                for fn in sorted(filenames):
                    name = base + fn
                    if is_temp(fn) or not name.startswith(prefix):
                        continue
                    try:
                        size = (Path(dirpath) / fn).stat().st_size
                    except FileNotFoundError:
                        continue  # removed while listing
                    yield ObjectInfo(name, size)
        except OSError as e:
            raise StorageError(f"{self.url}: cannot list: {e.strerror or e}") from e

    def stat(self, name: str) -> ObjectInfo:
        try:
            return ObjectInfo(name, self._path(name).stat().st_size)
        except FileNotFoundError as e:
            raise ObjectNotFound(f"{self.url}{name}: no such object") from e
        except OSError as e:
            raise StorageError(f"{self.url}{name}: cannot stat: {e.strerror or e}") from e

    def delete(self, name: str) -> None:
        path = self._path(name)
        try:
            path.unlink(missing_ok=True)
            # Drop folders the deletion emptied, as rclone does, but never the root itself.
            parent = path.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent
        except OSError as e:
            raise StorageError(f"{self.url}{name}: cannot delete: {e.strerror or e}") from e


def _raise(e: OSError) -> None:
    raise e


@contextmanager
def _ranged(f: BinaryIO, start: int, length: int | None, what: str) -> Iterator[BinaryIO]:
    with f:
        try:
            if start:
                f.seek(start)
        except OSError as e:
            raise StorageError(f"{what}: cannot seek: {e.strerror or e}") from e
        yield cast(BinaryIO, _Reader(f, length, what))


class _Reader:
    """Reads at most `remaining` bytes (all when None) and turns OSError into StorageError."""

    def __init__(self, f: BinaryIO, remaining: int | None, what: str) -> None:
        self._f = f
        self._remaining = remaining
        self._what = what

    def read(self, n: int = -1) -> bytes:
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            n = self._remaining if n < 0 else min(n, self._remaining)
        try:
            data = self._f.read(n)
        except OSError as e:
            raise StorageError(f"{self._what}: read failed: {e.strerror or e}") from e
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        view = memoryview(b).cast("B")
        if self._remaining is not None:
            view = view[: max(self._remaining, 0)]
        if not view:
            return 0
        try:
            n = self._f.readinto(view)  # type: ignore[attr-defined]
        except OSError as e:
            raise StorageError(f"{self._what}: read failed: {e.strerror or e}") from e
        n = int(n or 0)
        if self._remaining is not None:
            self._remaining -= n
        return n
