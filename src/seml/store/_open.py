"""Turn a remote given on the command line into an `ObjectStore`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from seml.errors import UsageError
from seml.store._base import ObjectStore
from seml.store._file import FileStore

__all__ = ["open_store"]


def open_store(url: str, *, s3_endpoint: str | None = None) -> ObjectStore:
    """``file:///abs/path``, ``s3://bucket[/prefix]`` or a plain local path.

    For S3 the endpoint is `s3_endpoint`, else ``SEML_S3_ENDPOINT``, else AWS's default.
    """
    if not url:
        raise UsageError("empty remote: give file:///path, s3://bucket/prefix or a path")
    if url.startswith("s3://"):
        from seml.store._s3 import S3Store

        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"{url}: s3:// URL needs a bucket name")
        return S3Store(bucket, prefix, endpoint=s3_endpoint)
    if url.startswith("file:"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{url}: file:// URL must name a local path (file:///path)")
        if not parts.path:
            raise UsageError(f"{url}: file:// URL has no path")
        return FileStore(Path(unquote(parts.path)))
    if "://" in url:
        scheme = url.split("://", 1)[0]
        raise UsageError(f"{url}: unsupported scheme {scheme!r} (use file:// or s3://)")
    return FileStore(Path(url).expanduser())
