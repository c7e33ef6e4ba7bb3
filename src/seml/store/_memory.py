"""An in-memory `ObjectStore` for unit tests."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from typing import BinaryIO

from seml.store._base import ObjectInfo, ObjectNotFound, StoreAdapter

__all__ = ["MemoryStore"]


class MemoryStore(StoreAdapter):
    """Objects held in a dict; `objects` is public so tests can tamper with them."""

    def __init__(self, url: str = "memory://") -> None:
        self._url = url
        self.objects: dict[str, bytes] = {}
        self.mtimes: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self._url

    def _put(self, name: str, src: BinaryIO, mtime: float | None) -> int:
        data = src.read()
        with self._lock:
            self.objects[name] = data
            if mtime is not None:
                self.mtimes[name] = mtime
        return len(data)

    def _open(self, name: str, start: int, length: int | None) -> AbstractContextManager[BinaryIO]:
        with self._lock:
            data = self.objects.get(name)
        if data is None:
            raise ObjectNotFound(f"{self._url}{name}: no such object")
        end = len(data) if length is None else start + length
        return nullcontext(io.BytesIO(data[start:end]))

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            items = [ObjectInfo(k, len(v)) for k, v in self.objects.items() if k.startswith(prefix)]
        return iter(items)

    def _stat(self, name: str) -> ObjectInfo:
        with self._lock:
            data = self.objects.get(name)
        if data is None:
            raise ObjectNotFound(f"{self._url}{name}: no such object")
        return ObjectInfo(name, len(data))

    def _delete(self, name: str) -> None:
        with self._lock:
            self.objects.pop(name, None)
            self.mtimes.pop(name, None)

    def _move(self, src: str, dst: str) -> None:
        with self._lock:
            if src not in self.objects:
                raise ObjectNotFound(f"{self._url}{src}: no such object")
            self.objects[dst] = self.objects.pop(src)
            if src in self.mtimes:
                self.mtimes[dst] = self.mtimes.pop(src)

    def _exists(self) -> bool:
        return True
