"""Helpers of the S3 store's plain-http fast path: streaming urllib3 bodies, full reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, BinaryIO, cast

from seml.errors import StorageError

__all__ = ["Prefixed", "fast_body", "read_up_to"]


def read_up_to(src: BinaryIO, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        data = src.read(n - got)
        if not data:
            break
        parts.append(data)
        got += len(data)
    return b"".join(parts)


class Prefixed:
    """`prefix`, then the rest of `src`: an upload that turned out larger than expected."""

    def __init__(self, prefix: bytes, src: BinaryIO) -> None:
        self._prefix = prefix
        self._src = src

    def read(self, n: int = -1) -> bytes:
        # Full reads: s3transfer takes a short read of a non-seekable stream for its end.
        if self._prefix:
            if n < 0:
                data, self._prefix = self._prefix + self._src.read(), b""
                return data
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return data + read_up_to(self._src, n - len(data)) if len(data) < n else data
        return self._src.read(n)


@contextmanager
def fast_body(resp: Any, where: str) -> Iterator[BinaryIO]:
    try:
        yield cast(BinaryIO, _FastReader(resp, where))
    finally:
        if resp.length_remaining != 0:  # not read to the end: the connection is not reusable
            resp.close()
        resp.release_conn()


class _FastReader:
    """A urllib3 response body; transport errors become StorageError (never naming the
    presigned URL, which carries a signature)."""

    def __init__(self, resp: Any, where: str) -> None:
        self._resp = resp
        self._where = where

    def read(self, n: int = -1) -> bytes:
        try:
            return cast(bytes, self._resp.read(None if n < 0 else n, decode_content=False))
        except Exception as e:
            raise StorageError(
                f"{self._where}: cannot download: the connection failed while reading "
                f"({type(e).__name__})"
            ) from e
