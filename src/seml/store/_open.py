"""Turn a remote given on the command line into an `ObjectStore`: the edge where storage
configuration is read (options, then the environment) and process-wide tuning is applied."""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from seml._environ import seconds
from seml.errors import UsageError
from seml.store._base import ObjectStore
from seml.store._file import FileStore
from seml.store._s3 import S3Config

__all__ = [
    "CONNECT_TIMEOUT_ENV",
    "ENDPOINT_ENV",
    "READ_TIMEOUT_ENV",
    "TIMEOUT_ENV",
    "check_endpoint",
    "open_store",
    "s3_config_from_env",
]

ENDPOINT_ENV = "SEML_S3_ENDPOINT"
TIMEOUT_ENV = "SEML_S3_TIMEOUT"
CONNECT_TIMEOUT_ENV = "SEML_S3_CONNECT_TIMEOUT"
READ_TIMEOUT_ENV = "SEML_S3_READ_TIMEOUT"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_BUCKET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{1,61}[A-Za-z0-9]")


def s3_config_from_env(
    endpoint: str | None = None,
    environ: Mapping[str, str] | None = None,
    *,
    timeout: float | None = None,
) -> S3Config:
    """S3 settings: `endpoint`, else ``SEML_S3_ENDPOINT``, else AWS's; retries from botocore's
    own ``AWS_MAX_ATTEMPTS`` (default 5), which an explicit retry config would otherwise hide;
    the time a request may take from `timeout`, else ``SEML_S3_TIMEOUT`` (connect and read
    limits from ``SEML_S3_CONNECT_TIMEOUT`` / ``SEML_S3_READ_TIMEOUT``, never above it)."""
    env = os.environ if environ is None else environ
    attempts = env.get("AWS_MAX_ATTEMPTS", "5")
    try:
        max_attempts = int(attempts)
    except ValueError:
        raise UsageError(f"AWS_MAX_ATTEMPTS must be an integer, not {attempts!r}") from None
    if max_attempts < 1:
        raise UsageError(f"AWS_MAX_ATTEMPTS must be at least 1, not {max_attempts}")
    if endpoint:
        url = check_endpoint(endpoint, "--s3-endpoint")
    elif env.get(ENDPOINT_ENV):
        url = check_endpoint(env[ENDPOINT_ENV], f"${ENDPOINT_ENV}")
    else:
        url = None
    default = S3Config()
    total = timeout if timeout is not None else seconds(env, TIMEOUT_ENV, default.timeout)
    if not (math.isfinite(total) and total > 0):
        raise UsageError(f"--s3-timeout must be a positive number of seconds, not {total}")
    return S3Config(
        endpoint=url,
        max_attempts=max_attempts,
        timeout=total,
        connect_timeout=min(seconds(env, CONNECT_TIMEOUT_ENV, default.connect_timeout), total),
        read_timeout=min(seconds(env, READ_TIMEOUT_ENV, default.read_timeout), total),
    )


def check_endpoint(endpoint: str, source: str) -> str:
    """An S3 endpoint URL (http:// or https://, a host, maybe a port and a path); UsageError
    naming `source` for anything else, credentials in the URL included."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        port = -1
    if (
        parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or port == -1
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in endpoint)
    ):
        raise UsageError(
            f"{source} {endpoint!r} is not an endpoint URL: give http://HOST:PORT or "
            "https://HOST (scheme, host and port only)"
        )
    if parts.username or parts.password:
        raise UsageError(
            f"{source}: the endpoint URL must not carry credentials; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY instead"
        )
    return endpoint


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
        if not _BUCKET.fullmatch(bucket) or ".." in bucket:
            raise UsageError(
                f"{url}: {bucket!r} is not a bucket name (3 to 63 letters, digits, '.', '-', '_')"
            )
        segments = prefix.rstrip("/").split("/") if prefix.rstrip("/") else []
        if any(seg in ("", ".", "..") for seg in segments) or any(
            ord(c) < 32 or c == "\\" for c in prefix
        ):
            raise UsageError(
                f"{url}: the prefix has an empty, '.' or '..' part, or a control character"
            )
        if s3 is None:
            config = s3_config_from_env(s3_endpoint)
        elif s3_endpoint:
            config = dataclasses.replace(s3, endpoint=check_endpoint(s3_endpoint, "--s3-endpoint"))
        else:
            config = s3
        _keep_big_buffers_off_the_heap()
        return S3Store(bucket, prefix, config)
    if url.startswith("file://"):
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise UsageError(f"{url}: file:// URL must name a local path (file:///path)")
        if not parts.path or parts.query or parts.fragment:
            raise UsageError(f"{url}: a file:// URL is file:///absolute/path (nothing after it)")
        return FileStore(Path(unquote(parts.path)))
    if _SCHEME.match(url):
        # Anything that looks like a URL but is not one of ours is a mistake, not a folder
        # named "s3:" (write ./name for a local path whose first part has a colon).
        scheme = url.split(":", 1)[0]
        if scheme.lower() in ("s3", "file"):
            raise UsageError(
                f"{url}: malformed {scheme} URL: write {scheme.lower()}://"
                + ("bucket/prefix" if scheme.lower() == "s3" else "/absolute/path")
            )
        raise UsageError(
            f"{url}: unsupported scheme {scheme!r} (use file:// or s3://; for a local path "
            "with a colon in its first part, write ./" + url + ")"
        )
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
