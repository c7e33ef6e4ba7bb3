"""The S3 store's fast path on plain-http endpoints (MinIO, SeaweedFS next to the job): GETs and
small PUTs through presigned URLs on a bare urllib3 pool.

A botocore `get_object` costs about 1 ms of CPU, which dominates a pull of many small objects.
This path signs the request as a presigned URL (GETs with our own SigV4 query signer,
`QuerySigner`, checked against botocore's in the tests; PUTs with botocore's) and sends it on a
plain connection pool; bodies are read from the socket straight into the caller's buffer. Any
answer but the expected one makes it step aside (`None` / `False`), and the store repeats the
request through botocore, with its retries and error codes. A request that timed out is not
repeated: a stalled server would only make the caller wait twice; the timeout is raised (the
store converts it, naming the endpoint). Presigned URLs carry a signature: nothing here ever
puts one in a message.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, cast
from urllib.parse import quote, urlsplit

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["Prefixed", "PresignedFastPath", "QuerySigner", "read_up_to"]

_EXPIRES = 900  # seconds a presigned URL stays valid: one request's worth


Credentials = tuple[str, str, str | None]  # access key, secret key, session token


class QuerySigner:
    """AWS Signature Version 4 query signatures (presigned URLs) for path-style requests to one
    endpoint, the same URL botocore's s3v4 presigner makes, without its per-request machinery
    (parameter validation, endpoint rules, event hooks: ~0.5 ms of CPU per URL, a quarter of
    the CPU of a pull of many small files). Only the host header is signed; the payload is
    UNSIGNED-PAYLOAD, as in every presigned URL. `credentials` is asked at every URL (botocore's
    refreshable credentials refresh there)."""

    def __init__(self, endpoint: str, region: str, credentials: Callable[[], Credentials]) -> None:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or parts.path not in ("", "/") or parts.query:
            raise ValueError(f"not a plain endpoint URL: {endpoint!r}")
        default = {"http": 80, "https": 443}[parts.scheme]
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        self._base = f"{parts.scheme}://{parts.netloc}"
        self._host = host if parts.port in (None, default) else f"{host}:{parts.port}"
        self._region = region
        self._credentials = credentials
        self._keys: dict[tuple[str, str], bytes] = {}

    def _signing_key(self, secret: str, day: str) -> bytes:
        key = self._keys.get((secret, day))
        if key is None:
            key = ("AWS4" + secret).encode()
            for part in (day, self._region, "s3", "aws4_request"):
                key = hmac.new(key, part.encode(), hashlib.sha256).digest()
            self._keys = {(secret, day): key}  # one day's key is all that is ever needed
        return key

    @property
    def base(self) -> str:
        """The endpoint's scheme and authority: what `target` is relative to."""
        return self._base

    def url(self, method: str, bucket: str, key: str, *, expires: int, now: float) -> str:
        return self._base + self.target(method, bucket, key, expires=expires, now=now)

    def target(self, method: str, bucket: str, key: str, *, expires: int, now: float) -> str:
        """The presigned request's path and query."""
        access, secret, token = self._credentials()
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
        day = stamp[:8]
        path = f"/{quote(bucket, safe='')}/{quote(key, safe='/~')}"
        params = {
            "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
            "X-Amz-Credential": f"{access}/{day}/{self._region}/s3/aws4_request",
            "X-Amz-Date": stamp,
            "X-Amz-Expires": str(expires),
            "X-Amz-SignedHeaders": "host",
        }
        if token:
            params["X-Amz-Security-Token"] = token
        query = "&".join(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items())
        )
        canonical = f"{method}\n{path}\n{query}\nhost:{self._host}\n\nhost\nUNSIGNED-PAYLOAD"
        scope = f"{day}/{self._region}/s3/aws4_request"
        digest = hashlib.sha256(canonical.encode()).hexdigest()
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{digest}"
        signature = hmac.new(self._signing_key(secret, day), to_sign.encode(), hashlib.sha256)
        return f"{path}?{query}&X-Amz-Signature={signature.hexdigest()}"


class PresignedFastPath:
    """Presigned GETs and PUTs for one bucket, on a shared urllib3 pool."""

    def __init__(
        self,
        client: S3Client,
        bucket: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        connections: int = 64,
        signer: QuerySigner | None = None,
    ) -> None:
        import urllib3

        self._client = client
        self._bucket = bucket
        self._signer = signer
        self._http = urllib3.PoolManager(
            maxsize=connections,
            retries=False,
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
        )
        # GETs go to the endpoint's own pool (no URL parsing and pool lookup per request).
        self._pool = self._http.connection_from_url(signer.base) if signer is not None else None

    def put(self, key: str, data: bytes, metadata: dict[str, str]) -> bool:
        """PUT `data`; False (nothing to undo: S3 stores an object only when a PUT completes)
        when anything is unusual."""
        params: dict[str, Any] = {"Bucket": self._bucket, "Key": key}
        if metadata:
            params["Metadata"] = metadata
        try:
            url = self._client.generate_presigned_url(
                "put_object", Params=params, ExpiresIn=_EXPIRES
            )
            headers = {f"x-amz-meta-{k}": v for k, v in metadata.items()}
            resp = self._http.request("PUT", url, body=data, headers=headers, redirect=False)
        except Exception as e:  # no credentials, connection refused, ...: botocore says it properly
            _raise_timeout(e)
            return False
        return bool(resp.status == 200)

    def get(self, key: str, byte_range: str | None) -> AbstractContextManager[BinaryIO] | None:
        """A streaming body for the object (or `byte_range` of it), or None when the answer is
        anything but the expected 200/206 with an unencoded body."""
        try:
            opener: Any
            if self._signer is not None and self._pool is not None:
                opener = self._pool.urlopen
                target = self._signer.target(
                    "GET", self._bucket, key, expires=_EXPIRES, now=time.time()
                )
            else:
                opener = self._http.urlopen
                target = self._client.generate_presigned_url(
                    "get_object", Params={"Bucket": self._bucket, "Key": key}, ExpiresIn=_EXPIRES
                )
            resp = opener(
                "GET",
                target,
                headers={"Range": byte_range} if byte_range else None,
                retries=False,
                redirect=False,
                preload_content=False,
                decode_content=False,
            )
        except Exception as e:  # no credentials, connection refused, ...: botocore says it properly
            _raise_timeout(e)
            return None
        encoding = resp.headers.get("Content-Encoding", "") or "identity"
        if resp.status != (206 if byte_range else 200) or encoding.lower() != "identity":
            resp.close()
            resp.release_conn()
            return None
        return _body(resp)


def _raise_timeout(e: Exception) -> None:
    import urllib3.exceptions

    if isinstance(e, urllib3.exceptions.TimeoutError):
        raise e


@contextmanager
def _body(resp: Any) -> Iterator[BinaryIO]:
    reader = _Reader(resp)
    try:
        yield cast(BinaryIO, reader)
    finally:
        if reader.left != 0:  # not read to the end: the connection is not reusable
            resp.close()
        resp.release_conn()


class _Reader:
    """A urllib3 response body, read without decoding (its errors are the store's to convert).

    `readinto` reads straight from the socket into the caller's buffer through the standard
    library's response under urllib3's (urllib3's own `read` allocates and copies twice per
    call: a third of a pull's CPU went to those copies and to faulting in fresh buffers).
    `left` counts what the Content-Length still promises, so a body read to its end is the
    only one whose connection goes back to the pool, and one cut short raises
    `http.client.IncompleteRead` (the store converts it) instead of ending early."""

    def __init__(self, resp: Any) -> None:
        self._resp = resp
        raw = getattr(resp, "_fp", None)
        self._raw = raw if isinstance(raw, http.client.HTTPResponse) else None
        self.left: int | None = resp.length_remaining

    def _count(self, n: int) -> None:
        if self.left is not None:
            self.left -= n

    def read(self, n: int = -1) -> bytes:
        data = cast(bytes, self._resp.read(None if n < 0 else n, decode_content=False))
        self._count(len(data))
        return data

    def readinto(self, b: bytearray | memoryview) -> int:
        if self._raw is None:
            view = memoryview(b).cast("B")
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        n = self._raw.readinto(b)
        if not n and len(b) and self.left:
            # http.client reports the end of a body cut short as an end (urllib3 did not)
            raise http.client.IncompleteRead(b"", self.left)
        self._count(n)
        return n


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
