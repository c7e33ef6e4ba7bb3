"""Turn a remote given on the command line into an `ObjectStore`: the edge where storage
configuration is read (options, then the environment) and process-wide tuning is applied."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from seml.errors import UsageError
from seml.store._base import ObjectStore
from seml.store._file import FileStore
from seml.store._s3 import S3Config

__all__ = ["ENDPOINT_ENV", "open_store", "s3_config_from_env"]

ENDPOINT_ENV = "SEML_S3_ENDPOINT"


def s3_config_from_env(
    endpoint: str | None = None, environ: Mapping[str, str] | None = None
) -> S3Config:
    """S3 settings: `endpoint`, else ``SEML_S3_ENDPOINT``, else AWS's; retries from botocore's
    own ``AWS_MAX_ATTEMPTS`` (default 5), which an explicit retry config would otherwise hide."""
    env = os.environ if environ is None else environ
    attempts = env.get("AWS_MAX_ATTEMPTS", "5")
    try:
        max_attempts = int(attempts)
    except ValueError:
        raise UsageError(f"AWS_MAX_ATTEMPTS must be an integer, not {attempts!r}") from None
    return S3Config(endpoint=endpoint or env.get(ENDPOINT_ENV) or None, max_attempts=max_attempts)


def open_store(
    url: str, *, s3_endpoint: str | None = None, s3: S3Config | None = None
) -> ObjectStore:
    """``file:///abs/path``, ``s3://bucket[/prefix]`` or a plain local path.

    For S3: `s3` if given (with `s3_endpoint` overriding its endpoint), else
    `s3_config_from_env(s3_endpoint)`.
    """
    if not url:
        raise UsageError("empty remote: give file:///path, s3://bucket/prefix or a path")
    if url.startswith("s3://"):
        from seml.store._s3 import S3Store

        rest = url[len("s3://") :]
        bucket, _, prefix = rest.partition("/")
        if not bucket:
            raise UsageError(f"{url}: s3:// URL needs a bucket name")
        if s3 is None:
            config = s3_config_from_env(s3_endpoint)
        elif s3_endpoint:
            config = dataclasses.replace(s3, endpoint=s3_endpoint)
        else:
            config = s3
        _keep_big_buffers_off_the_heap()
        return S3Store(bucket, prefix, config)
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


_malloc_tuned = False


def _keep_big_buffers_off_the_heap() -> None:
    """Make glibc return multi-MiB buffers (S3 upload parts) to the OS when they are freed.

    glibc raises its mmap threshold each time a large block is freed, after which 8 MiB parts
    come from per-thread heaps that fragment and keep peak RSS far above what is in use. Fixing
    the threshold at 4 MiB keeps memory flat while the 1 MiB crypt buffers, allocated per file,
    stay on the fast heap path. Process-wide, so decided here, where the process opens its
    store; no effect (and no error) off glibc.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return
    _malloc_tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_mmap_threshold = -3
        libc.mallopt(m_mmap_threshold, 4 << 20)
    except (OSError, AttributeError):
        pass
