"""The object storage interface every backend implements, and its errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

from seml.errors import StorageError

__all__ = ["ObjectInfo", "ObjectNotFound", "ObjectStore", "check_name"]


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


def check_name(name: str) -> str:
    """Reject names that could escape the store's root or are not plain relative paths."""
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise StorageError(f"invalid object name {name!r}: must be a relative path without . or ..")
    if "\x00" in name or "\\" in name:
        raise StorageError(f"invalid object name {name!r}: contains NUL or backslash")
    return name
