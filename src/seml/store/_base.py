"""The object storage interface, the base class every backend builds on, and its errors."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from types import TracebackType
from typing import BinaryIO, NoReturn, Protocol, cast, runtime_checkable

from seml.errors import SemlError, StorageError

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "StoreAdapter", "check_name"]


class ObjectNotFound(StorageError):
    """The named object does not exist in the store."""


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One stored object: its name relative to the store's root and its size in bytes."""

    name: str
    size: int


@runtime_checkable
class ObjectStore(Protocol):
    """A flat namespace of named byte objects under one root (a folder, a bucket prefix).

    Names use ``/`` as separator, never start with ``/`` and have no ``.``/``..`` segments.
    Every method raises `StorageError` (or `ObjectNotFound`) naming the object, never a
    foreign exception. Implementations are safe to call from several threads at once.
    """

    @property
    def url(self) -> str:
        """Where the store lives, for messages (never contains a secret)."""
        ...

    def put(self, name: str, src: BinaryIO, *, mtime: float | None = None) -> int:
        """Store everything read from `src` (until EOF) as `name`, replacing any previous
        object only once complete; return the number of bytes stored. `mtime` (seconds since
        the epoch) is kept where the backend has a place for it, as rclone does."""
        ...

    def open(
        self, name: str, *, start: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        """A streaming reader over the object's bytes ``[start, start+length)``."""
        ...

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose name starts with `prefix`, in no particular order."""
        ...

    def stat(self, name: str) -> ObjectInfo:
        """Size of one object; `ObjectNotFound` when missing."""
        ...

    def delete(self, name: str) -> None:
        """Remove one object; removing a missing object is not an error."""
        ...

    def move(self, src: str, dst: str) -> None:
        """Replace object `dst` with object `src`, then remove `src`. `dst` is never partial:
        a rename on a filesystem, a server-side copy then a delete on S3."""
        ...

    def exists(self) -> bool:
        """Whether the store's root exists (a folder, a bucket); a missing one lists empty."""
        ...


def check_name(name: str) -> str:
    """Reject names that could escape the store's root or are not plain relative paths."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid object name {name!r}: must be a relative path without . or ..")
    if "\x00" in name or "\\" in name:
        raise StorageError(f"invalid object name {name!r}: contains NUL or backslash")
    return name


class StoreAdapter(ABC):
    """The base of every backend: its public methods (the `ObjectStore` interface) check the
    name, call the backend's private method (`_put`, `_open`, `_list`, `_stat`, `_delete`) and
    turn whatever foreign error escapes, while opening or while reading, into a StorageError
    in one place: `_convert`. A backend only says which exceptions are foreign (`_foreign`)
    and how to describe them; a SemlError (say, the source of a put failing) passes as is.
    """

    @property
    @abstractmethod
    def url(self) -> str:
        """Where the store lives, for messages (never contains a secret)."""

    # -- the interface ----------------------------------------------------------------------

    def put(self, name: str, src: BinaryIO, *, mtime: float | None = None) -> int:
        check_name(name)
        try:
            return self._put(name, src, mtime)
        except self._foreign() as e:
            self._raise(e, name, "upload")

    def open(
        self, name: str, *, start: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        check_name(name)
        return self._opened(name, start, length)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        try:
            yield from self._list(prefix)
        except self._foreign() as e:
            self._raise(e, prefix, "list")

    def stat(self, name: str) -> ObjectInfo:
        check_name(name)
        try:
            return self._stat(name)
        except self._foreign() as e:
            self._raise(e, name, "stat")

    def delete(self, name: str) -> None:
        check_name(name)
        try:
            self._delete(name)
        except self._foreign() as e:
            self._raise(e, name, "delete")

    def move(self, src: str, dst: str) -> None:
        check_name(src)
        check_name(dst)
        try:
            self._move(src, dst)
        except self._foreign() as e:
            self._raise(e, src, "move")

    def exists(self) -> bool:
        try:
            return self._exists()
        except self._foreign() as e:
            self._raise(e, "", "check")

    # -- what a backend provides -------------------------------------------------------------

    @abstractmethod
    def _put(self, name: str, src: BinaryIO, mtime: float | None) -> int: ...

    @abstractmethod
    def _open(
        self, name: str, start: int, length: int | None
    ) -> AbstractContextManager[BinaryIO]: ...

    @abstractmethod
    def _list(self, prefix: str) -> Iterator[ObjectInfo]: ...

    @abstractmethod
    def _stat(self, name: str) -> ObjectInfo: ...

    @abstractmethod
    def _delete(self, name: str) -> None: ...

    @abstractmethod
    def _move(self, src: str, dst: str) -> None: ...

    @abstractmethod
    def _exists(self) -> bool: ...

    def _foreign(self) -> tuple[type[Exception], ...]:
        """The exceptions the backend's libraries raise (others are bugs and propagate)."""
        return (OSError,)

    def _convert(self, e: Exception, name: str, action: str) -> StorageError:
        """The StorageError (or ObjectNotFound) for a foreign error `e` while doing `action`."""
        where = f"{self.url}{name}"
        if isinstance(e, FileNotFoundError) and action in ("download", "stat", "move"):
            return ObjectNotFound(f"{where}: no such object")
        if isinstance(e, OSError):
            return StorageError(f"{where}: cannot {action}: {e.strerror or e}")
        return StorageError(f"{where}: cannot {action}: {e}")

    # -- the one place foreign errors are converted -------------------------------------------

    def _raise(self, e: Exception, name: str, action: str) -> NoReturn:
        if isinstance(e, SemlError):  # a backend library calling back into ours (a source)
            raise e
        raise self._convert(e, name, action) from e

    def _opened(self, name: str, start: int, length: int | None) -> _Opened:
        try:
            opened = self._open(name, start, length)
            body = opened.__enter__()
        except self._foreign() as e:
            self._raise(e, name, "download")
        return _Opened(self, name, opened, body)


class _Opened(AbstractContextManager[BinaryIO]):
    """An object opened at once (so a missing one is reported by `open()` itself), read
    through `_Guarded`, closed by the backend's own context manager."""

    def __init__(
        self,
        adapter: StoreAdapter,
        name: str,
        opened: AbstractContextManager[BinaryIO],
        body: BinaryIO,
    ) -> None:
        self._adapter = adapter
        self._name = name
        self._opened = opened
        self._body = cast(BinaryIO, _Guarded(body, adapter, name))

    def __enter__(self) -> BinaryIO:
        return self._body

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        try:
            return self._opened.__exit__(t, e, tb)
        except self._adapter._foreign() as failure:
            if e is not None:
                raise
            self._adapter._raise(failure, self._name, "download")


class _Guarded:
    """A backend's reader whose foreign errors become StorageError (through its adapter)."""

    def __init__(self, body: BinaryIO, adapter: StoreAdapter, name: str) -> None:
        self._body = body
        self._adapter = adapter
        self._name = name
        self._readinto = getattr(body, "readinto", None)

    def read(self, n: int = -1) -> bytes:
        try:
            return self._body.read(n)
        except self._adapter._foreign() as e:
            self._adapter._raise(e, self._name, "download")

    def readinto(self, b: bytearray | memoryview) -> int:
        try:
            if self._readinto is not None:
                return int(self._readinto(b) or 0)
            view = memoryview(b).cast("B")
            data = self._body.read(len(view))
            view[: len(data)] = data
            return len(data)
        except self._adapter._foreign() as e:
            self._adapter._raise(e, self._name, "download")
