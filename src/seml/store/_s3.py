"""`s3://bucket/prefix` object storage through boto3 (any S3 endpoint: AWS, MinIO, SeaweedFS).

Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
~/.aws). Everything else is an `S3Config` the caller passes in (`open_store` reads it from the
command line and the environment): nothing here reads the environment or tunes the process.
Large objects go up in parallel multipart uploads with a bounded number of parts in memory;
transient failures are retried with exponential backoff by botocore's standard mode.

Every request is bounded in time (`S3Config`): connecting takes at most `connect_timeout`, no
read waits longer than `read_timeout`, and no retry starts once `timeout` seconds have passed
since the request began, so a server that stalls (paused, overloaded, cut off) fails the
request after at most `timeout + connect_timeout + read_timeout` seconds, naming the endpoint.
A download's body must also arrive within `timeout` plus one second per `min_rate` bytes.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from seml.errors import StorageError
from seml.store._base import ObjectInfo, ObjectNotFound, StoreAdapter
from seml.store._s3fast import Prefixed, PresignedFastPath, QuerySigner, read_up_to

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Config", "S3Store"]

_MiB = 1 << 20
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_SMALL_PUT = 1 * _MiB  # objects up to this size skip s3transfer on the fast path


@dataclass(frozen=True)
class S3Config:
    """How to reach an S3 endpoint and how hard to push it.

    Objects above `part_size` go up as multipart uploads (S3 allows 10,000 parts: 78 GiB per
    object at the default 8 MiB). All uploads through one store share `concurrency` request
    threads and a budget of `memory_parts` parts held in memory, so memory stays constant
    whatever the size and number of objects. `fast_path` (default: on for a plain-http
    endpoint) sends GETs and small PUTs through presigned URLs (`PresignedFastPath`).
    """

    endpoint: str | None = None  # None: AWS
    max_attempts: int = 5
    connect_timeout: float = 5.0
    read_timeout: float = 20.0
    timeout: float = 60.0  # seconds after which a request starts no new attempt
    min_rate: int = 64 * 1024  # bytes per second a download's body must at least average
    part_size: int = 8 * _MiB
    concurrency: int = 4
    memory_parts: int = 3
    create_bucket: bool = True
    fast_path: bool | None = None

    @property
    def wants_fast_path(self) -> bool:
        if self.fast_path is not None:
            return self.fast_path
        return bool(self.endpoint and self.endpoint.lower().startswith("http://"))


class S3Store(StoreAdapter):
    """Objects under ``s3://bucket/prefix/``, configured by an `S3Config`."""

    def __init__(self, bucket: str, prefix: str = "", config: S3Config | None = None) -> None:
        import boto3
        from botocore.config import Config
        from s3transfer.manager import TransferConfig as S3TransferConfig
        from s3transfer.manager import TransferManager

        if not bucket:
            raise StorageError("s3:// URL needs a bucket name")
        c = config or S3Config()
        self.config = c
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = c.endpoint
        self._bucket_checked = False
        self._lock = threading.Lock()
        session = boto3.session.Session()
        boto_config = Config(
            retries={"max_attempts": c.max_attempts, "mode": "standard"},
            connect_timeout=c.connect_timeout,
            read_timeout=c.read_timeout,
            max_pool_connections=64,
            # UNSIGNED-PAYLOAD: botocore would otherwise hash every body (each 8 MiB part) with
            # SHA-256 for the signature on a plain-http endpoint, a pass over all the data the
            # signed manifest already authenticates (every object is encrypted and its size and
            # plaintext SHA-256 are checked by pull); the request itself stays signed.
            s3={"payload_signing_enabled": False, "addressing_style": "path"}
            if c.endpoint
            else {"payload_signing_enabled": False},
            # Content is authenticated end to end by the crypt format and the manifest; extra
            # CRC32 trailers cost CPU and are not understood by every S3 implementation.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        region = session.region_name or ("us-east-1" if c.endpoint else None)
        try:
            self._client: S3Client = session.client(
                "s3", endpoint_url=c.endpoint, region_name=region, config=boto_config
            )
        except ValueError as e:  # botocore's check of the endpoint URL
            raise StorageError(f"S3 endpoint {c.endpoint!r} is not usable: {e}") from e
        # The deadline of each request: stamped when it starts, checked before every retry.
        events = self._client.meta.events
        events.register_first("before-call.s3", self._start_clock)
        events.register_first("needs-retry.s3", self._stop_retrying)
        self._fast = None
        if c.wants_fast_path:
            self._fast = PresignedFastPath(
                self._client,
                bucket,
                connect_timeout=c.connect_timeout,
                read_timeout=c.read_timeout,
                signer=_signer(c.endpoint, region, session),
            )
        # One transfer manager for the whole store: every upload in flight shares its request
        # threads and its in-memory part budget, so memory is bounded however many files move.
        self._manager = TransferManager(
            self._client,
            S3TransferConfig(
                multipart_threshold=c.part_size,
                multipart_chunksize=c.part_size,
                max_request_concurrency=c.concurrency,
                max_submission_concurrency=c.concurrency,
                max_in_memory_upload_chunks=c.memory_parts,
            ),
        )

    def close(self) -> None:
        """Stop the upload threads (idle ones also stop at interpreter exit)."""
        self._manager.shutdown()

    def _start_clock(self, context: dict[str, Any], **_: Any) -> None:
        context.setdefault("seml_started", time.monotonic())

    def _stop_retrying(
        self,
        request_dict: dict[str, Any],
        attempts: int,
        response: Any = None,
        caught_exception: Exception | None = None,
        **_: Any,
    ) -> None:
        """Raise instead of letting botocore retry once the request's time is up."""
        failed = caught_exception is not None or (
            response is not None and response[0].status_code in (429, 500, 502, 503, 504)
        )
        started = request_dict.get("context", {}).get("seml_started")
        if not failed or started is None:
            return
        elapsed = time.monotonic() - started
        if elapsed >= self.config.timeout:
            raise _OutOfTime(
                f"no answer within --s3-timeout {self.config.timeout:g} s ({attempts} attempts "
                f"over {elapsed:.0f} s; the server is stalled or unreachable)"
            ) from caught_exception

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    # -- errors: what is foreign, and what it means ------------------------------------------

    def _foreign(self) -> tuple[type[Exception], ...]:
        import http.client

        import boto3.exceptions
        import s3transfer.exceptions as transfer
        import urllib3.exceptions
        from botocore.exceptions import BotoCoreError, ClientError

        return (
            BotoCoreError,
            ClientError,
            boto3.exceptions.Boto3Error,
            transfer.RetriesExceededError,
            transfer.S3UploadFailedError,
            transfer.S3DownloadFailedError,
            transfer.CancelledError,
            transfer.TransferNotDoneError,
            urllib3.exceptions.HTTPError,
            http.client.HTTPException,  # the fast path's body, read from the socket directly
            _OutOfTime,
            OSError,
        )

    def _convert(self, e: Exception, name: str, action: str) -> StorageError:
        import http.client

        import boto3.exceptions
        import s3transfer.exceptions as transfer
        import urllib3.exceptions
        from botocore.exceptions import ClientError, ConnectTimeoutError, NoCredentialsError
        from botocore.exceptions import ReadTimeoutError as BotoReadTimeout

        where = f"{self.url}{name} (endpoint {self.endpoint or 'AWS'})"
        wrappers = (
            boto3.exceptions.S3UploadFailedError,
            transfer.S3UploadFailedError,
            transfer.S3DownloadFailedError,
            transfer.RetriesExceededError,
        )
        if isinstance(e, wrappers) and isinstance(e.__cause__, Exception):
            e = e.__cause__  # what actually failed
        c = self.config
        if isinstance(e, _OutOfTime):
            return StorageError(f"{where}: cannot {action}: {e}")
        timeouts = (ConnectTimeoutError, BotoReadTimeout, urllib3.exceptions.TimeoutError)
        if isinstance(e, (*timeouts, TimeoutError)):
            return StorageError(
                f"{where}: cannot {action}: no answer in time (connect {c.connect_timeout:g} s, "
                f"read {c.read_timeout:g} s; the server is stalled or unreachable)"
            )
        if isinstance(e, NoCredentialsError):
            return StorageError(
                f"{where}: cannot {action}: no S3 credentials (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            )
        if isinstance(e, ClientError):
            err = e.response.get("Error", {})
            code = str(err.get("Code", "?"))
            if code in _NOT_FOUND:
                return ObjectNotFound(f"{where}: no such object")
            if code == "NoSuchBucket":
                return ObjectNotFound(f"{where}: no such object (bucket {self.bucket} is missing)")
            return StorageError(f"{where}: cannot {action}: {code}: {err.get('Message', '')}")
        if isinstance(e, http.client.IncompleteRead):
            return StorageError(
                f"{where}: cannot {action}: the connection ended after {len(e.partial)} more "
                "bytes of the body, before all it announced (the server failed or was cut off)"
            )
        if isinstance(e, (urllib3.exceptions.HTTPError, http.client.HTTPException)):
            # Its text may hold a presigned URL (a signature): name its kind only.
            return StorageError(
                f"{where}: cannot {action}: the connection failed ({type(e).__name__})"
            )
        return StorageError(f"{where}: cannot {action}: {e}")

    @staticmethod
    def _code(e: Exception) -> str:
        from botocore.exceptions import ClientError

        return str(e.response.get("Error", {}).get("Code")) if isinstance(e, ClientError) else ""

    # -- the backend ------------------------------------------------------------------------

    def _ensure_bucket(self) -> None:
        with self._lock:
            if self._bucket_checked or not self.config.create_bucket:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except self._foreign() as e:
                if self._code(e) not in ("404", "NoSuchBucket"):
                    self._raise(e, "", "check bucket")
                try:
                    self._client.create_bucket(Bucket=self.bucket)
                except self._foreign() as e2:
                    self._raise(e2, "", "create bucket")
            self._bucket_checked = True

    def _put(self, name: str, src: BinaryIO, mtime: float | None) -> int:
        key = self._key(name)
        self._ensure_bucket()
        # The metadata rclone's S3 backend reads the modification time from.
        metadata = {"mtime": f"{mtime:.9f}"} if mtime is not None else {}
        head = b""
        if self._fast is not None:
            # A small object (most of a dataset tree) goes up in one plain PUT when it can.
            head = read_up_to(src, _SMALL_PUT + 1)
            if len(head) <= _SMALL_PUT and self._fast.put(key, head, metadata):
                return len(head)
        counted = _Counting(cast(BinaryIO, Prefixed(head, src)) if head else src)
        extra = {"Metadata": metadata} if metadata else {}
        self._manager.upload(cast(BinaryIO, counted), self.bucket, key, extra_args=extra).result()
        return counted.count

    def _open(self, name: str, start: int, length: int | None) -> AbstractContextManager[BinaryIO]:
        key = self._key(name)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or length is not None:
            if length == 0:
                return _empty()
            end = "" if length is None else str(start + length - 1)
            args["Range"] = f"bytes={start}-{end}"
        deadline = time.monotonic() + self.config.timeout
        if self._fast is not None:
            fast = self._fast.get(key, args.get("Range"))
            if fast is not None:
                return _bounded(fast, deadline, self.config)
        response = self._client.get_object(**args)
        return _bounded(_body(response["Body"]), deadline, self.config)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        root = f"{self.prefix}/" if self.prefix else ""
        pages = self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=root + prefix
        )
        try:
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a folder marker some tools create
                    yield ObjectInfo(key[len(root) :], obj["Size"])
        except self._foreign() as e:
            if self._code(e) != "NoSuchBucket":  # no bucket yet: nothing in it
                raise

    def _stat(self, name: str) -> ObjectInfo:
        head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        return ObjectInfo(name, head["ContentLength"])

    def _delete(self, name: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(name))

    def _move(self, src: str, dst: str) -> None:
        # A server-side copy (in parts above `part_size`, keeping the metadata), then a delete:
        # `dst` changes only when the copy completes, as for any upload.
        source = {"Bucket": self.bucket, "Key": self._key(src)}
        self._manager.copy(source, self.bucket, self._key(dst)).result()
        self._client.delete_object(Bucket=self.bucket, Key=self._key(src))

    def _exists(self) -> bool:
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except self._foreign() as e:
            if self._code(e) in ("404", "NoSuchBucket"):
                return False
            raise
        return True


def _signer(endpoint: str | None, region: str | None, session: Any) -> QuerySigner | None:
    """Our own presigner for a path-style endpoint (None: botocore presigns)."""
    if not endpoint or not region:
        return None

    def credentials() -> tuple[str, str, str | None]:
        from botocore.exceptions import NoCredentialsError

        found = session.get_credentials()  # resolved once, then cached by the session
        if found is None:
            raise NoCredentialsError()  # the fast path steps aside; botocore says it properly
        frozen = found.get_frozen_credentials()
        return frozen.access_key, frozen.secret_key, frozen.token

    try:
        return QuerySigner(endpoint, region, credentials)
    except ValueError:  # an endpoint with a path: botocore knows how to address it
        return None


class _OutOfTime(Exception):
    """A request's time ran out (before botocore's retries did, or while its body arrived)."""


@contextmanager
def _bounded(
    opened: AbstractContextManager[BinaryIO], deadline: float, config: S3Config
) -> Iterator[BinaryIO]:
    """A body that must arrive by the request's deadline plus one second per `min_rate`
    bytes (a server that trickles is as stuck as one that stalls)."""
    with opened as body:
        yield cast(BinaryIO, _Deadline(body, deadline, config))


class _Deadline:
    def __init__(self, body: BinaryIO, deadline: float, config: S3Config) -> None:
        self._body = body
        self._deadline = deadline
        self._config = config
        self._seen = 0

    def read(self, n: int = -1) -> bytes:
        data = self._body.read(n)
        self._check(len(data))
        return data

    def _check(self, n: int) -> None:
        self._seen += n
        c = self._config
        if n and time.monotonic() > self._deadline + self._seen / c.min_rate:
            raise _OutOfTime(
                f"the server sent {self._seen} bytes slower than --s3-timeout {c.timeout:g} s "
                f"plus {c.min_rate} bytes per second allow (it is stalled or overloaded)"
            )

    def readinto(self, b: bytearray | memoryview) -> int:
        readinto = getattr(self._body, "readinto", None)
        if readinto is None:
            view = memoryview(b).cast("B")
            data = self.read(len(view))
            view[: len(data)] = data
            return len(data)
        n = int(readinto(b) or 0)
        self._check(n)
        return n


class _Counting:
    """Counts the bytes boto3 reads; deliberately not seekable so s3transfer streams it."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.count += len(data)
        return data


@contextmanager
def _empty() -> Iterator[BinaryIO]:
    import io

    yield io.BytesIO()


@contextmanager
def _body(body: Any) -> Iterator[BinaryIO]:
    try:
        yield cast(BinaryIO, _BodyReader(body))
    finally:
        body.close()


class _BodyReader:
    """botocore's streaming body, read the way the store's readers are (n < 0: all)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, n: int = -1) -> bytes:
        return cast(bytes, self._body.read(None if n < 0 else n))
