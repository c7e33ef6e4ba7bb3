"""`file://` object storage: one file per object under a root folder, written atomically."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from seml._fs import atomic_writer, is_temp
from seml.errors import StorageError
from seml.store._base import ObjectInfo, StoreAdapter, check_name

__all__ = ["FileStore"]

_COPY_BUFFER = 1 << 20


class FileStore(StoreAdapter):
    """Objects as files under `root` (the layout rclone's local backend uses, so an rclone
    crypt remote over the same folder reads them). Writes go to a temporary file in the same
    folder and are renamed over the final name only when complete (`seml._fs`)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).absolute()

    @property
    def url(self) -> str:
        return self.root.as_uri() + "/"

    def _path(self, name: str) -> Path:
        return self.root.joinpath(*check_name(name).split("/"))

    def _convert(self, e: Exception, name: str, action: str) -> StorageError:
        return super()._convert(e, name, "write object" if action == "upload" else action)

    def _put(self, name: str, src: BinaryIO, mtime: float | None) -> int:
        path = self._path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic, not flushed (like rclone's local backend): push writes its manifest last, and
        # pull refuses any object the manifest does not vouch for.
        with atomic_writer(path, mode=0o600, sync=False) as out:
            shutil.copyfileobj(src, out, _COPY_BUFFER)
            size = out.tell()
            if mtime is not None:
                os.utime(out.fileno(), (mtime, mtime))
        return size

    def put_with(
        self, name: str, write: Callable[[BinaryIO], int], *, mtime: float | None = None
    ) -> int:
        """Store as `name` what `write(file)` writes into a new, empty local file (positional
        writes welcome, as `Cipher.encrypt_file` makes them); the size it returns is checked
        against the file's. Atomic and not flushed, like `put`."""
        path = self._path(name)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_writer(path, mode=0o600, sync=False) as out:
                size = write(out)
                stored = os.fstat(out.fileno()).st_size
                if stored != size:
                    raise StorageError(f"{self.url}{name}: wrote {stored} bytes, expected {size}")
                if mtime is not None:
                    os.utime(out.fileno(), (mtime, mtime))
        except OSError as e:
            self._raise(e, name, "upload")
        return size

    def open_file(self, name: str) -> BinaryIO:
        """The whole object as an open local file (unbuffered, for positional reads, as
        `Cipher.decrypt_file` does them); the caller closes it. Errors as `open` raises them."""
        try:
            return cast(BinaryIO, open(self._path(name), "rb", buffering=0))
        except OSError as e:
            self._raise(e, name, "download")

    def _open(self, name: str, start: int, length: int | None) -> AbstractContextManager[BinaryIO]:
        return _ranged(self._path(name), start, length)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        if not self.root.is_dir():
            return
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

    def _stat(self, name: str) -> ObjectInfo:
        return ObjectInfo(name, self._path(name).stat().st_size)

    def _delete(self, name: str) -> None:
        path = self._path(name)
        path.unlink(missing_ok=True)
        self._prune(path.parent)

    def _prune(self, parent: Path) -> None:
        """Drop folders a deletion emptied, as rclone does, but never the root itself."""
        while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
            parent = parent.parent

    def _move(self, src: str, dst: str) -> None:
        source, target = self._path(src), self._path(dst)
        target.parent.mkdir(parents=True, exist_ok=True)
        source.replace(target)  # atomic: `dst` is the old object or the new one
        self._prune(source.parent)

    def _exists(self) -> bool:
        return self.root.is_dir()


def _raise(e: OSError) -> None:
    raise e


@contextmanager
def _ranged(path: Path, start: int, length: int | None) -> Iterator[BinaryIO]:
    with open(path, "rb") as f:
        if start:
            f.seek(start)
        yield cast(BinaryIO, _Reader(f, length))


class _Reader:
    """Reads at most `remaining` bytes (all when None)."""

    def __init__(self, f: BinaryIO, remaining: int | None) -> None:
        self._f = f
        self._remaining = remaining

    def read(self, n: int = -1) -> bytes:
        if self._remaining is not None:
            if self._remaining <= 0:
                return b""
            n = self._remaining if n < 0 else min(n, self._remaining)
        data = self._f.read(n)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        view = memoryview(b).cast("B")
        if self._remaining is not None:
            view = view[: max(self._remaining, 0)]
        if not view:
            return 0
        n = int(self._f.readinto(view) or 0)  # type: ignore[attr-defined]
        if self._remaining is not None:
            self._remaining -= n
        return n
