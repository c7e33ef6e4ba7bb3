"""`s3://bucket/prefix` object storage through boto3 (any S3 endpoint: AWS, MinIO, SeaweedFS).

Credentials come from boto3's standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE,
~/.aws). Large objects go up in parallel multipart uploads with a bounded number of parts in
memory; transient failures are retried with exponential backoff by botocore's standard mode.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from seml.errors import SemlError, StorageError
from seml.store._base import ObjectInfo, ObjectNotFound, check_name
from seml.store._s3fast import Prefixed, fast_body, read_up_to

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

__all__ = ["S3Store"]

ENDPOINT_ENV = "SEML_S3_ENDPOINT"
_MiB = 1 << 20
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_SMALL_PUT = 1 * _MiB  # objects up to this size skip s3transfer on a plain-http endpoint


class S3Store:
    """Objects under ``s3://bucket/prefix/``.

    Objects above `part_size` go up as multipart uploads (S3 allows 10,000 parts: 78 GiB per
    object at the default 8 MiB). All uploads through one store share
    `concurrency` request threads and a budget of `memory_parts` parts held in memory, so memory
    stays constant whatever the size and number of objects.
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint: str | None = None,
        part_size: int = 8 * _MiB,
        concurrency: int = 4,
        memory_parts: int = 3,
        max_attempts: int | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        create_bucket: bool = True,
    ) -> None:
        import boto3
        from botocore.config import Config
        from s3transfer.manager import TransferConfig as S3TransferConfig
        from s3transfer.manager import TransferManager

        if not bucket:
            raise StorageError("s3:// URL needs a bucket name")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint or os.environ.get(ENDPOINT_ENV) or None
        self._create_bucket = create_bucket
        self._bucket_checked = False
        self._lock = threading.Lock()
        if max_attempts is None:
            # botocore's own variable; our explicit retry config would otherwise hide it.
            try:
                max_attempts = int(os.environ.get("AWS_MAX_ATTEMPTS", "5"))
            except ValueError as e:
                raise StorageError("AWS_MAX_ATTEMPTS must be an integer") from e
        _keep_big_buffers_off_the_heap()
        session = boto3.session.Session()
        config = Config(
            retries={"max_attempts": max_attempts, "mode": "standard"},
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            max_pool_connections=64,
            s3={"addressing_style": "path"} if self.endpoint else {},
            # Content is authenticated end to end by the crypt format and the manifest; extra
            # CRC32 trailers cost CPU and are not understood by every S3 implementation.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        region = session.region_name or ("us-east-1" if self.endpoint else None)
        self._client: S3Client = session.client(
            "s3", endpoint_url=self.endpoint, region_name=region, config=config
        )
        # Downloads from a plain-http endpoint (MinIO, SeaweedFS next to the job) go through
        # presigned URLs on a bare urllib3 pool: a botocore get_object costs about 1 ms of CPU,
        # which dominates a pull of many small objects. Anything unusual falls back to botocore.
        self._http: Any = None
        if self.endpoint and self.endpoint.lower().startswith("http://"):
            import urllib3

            self._http = urllib3.PoolManager(
                maxsize=64,
                retries=False,
                timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            )
        # One transfer manager for the whole store: every upload in flight shares its request
        # threads and its in-memory part budget, so memory is bounded however many files move.
        self._manager = TransferManager(
            self._client,
            S3TransferConfig(
                multipart_threshold=part_size,
                multipart_chunksize=part_size,
                max_request_concurrency=concurrency,
                max_submission_concurrency=concurrency,
                max_in_memory_upload_chunks=memory_parts,
            ),
        )

    def close(self) -> None:
        """Stop the upload threads (idle ones also stop at interpreter exit)."""
        self._manager.shutdown()

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix + '/' if self.prefix else ''}"

    def _key(self, name: str) -> str:
        check_name(name)
        return f"{self.prefix}/{name}" if self.prefix else name

    def _error(self, name: str, action: str, e: Exception) -> StorageError:
        from botocore.exceptions import ClientError, NoCredentialsError

        where = f"{self.url}{name}" + (f" (endpoint {self.endpoint})" if self.endpoint else "")
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
        cause = e.__cause__ if e.__cause__ is not None and "Failed" in type(e).__name__ else e
        return StorageError(f"{where}: cannot {action}: {cause}")

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        with self._lock:
            if self._bucket_checked or not self._create_bucket:
                return
            try:
                self._client.head_bucket(Bucket=self.bucket)
            except ClientError as e:
                if str(e.response.get("Error", {}).get("Code")) not in ("404", "NoSuchBucket"):
                    raise self._error("", "check bucket", e) from e
                try:
                    self._client.create_bucket(Bucket=self.bucket)
                except (BotoCoreError, ClientError) as e2:
                    raise self._error("", "create bucket", e2) from e2
            except BotoCoreError as e:
                raise self._error("", "check bucket", e) from e
            self._bucket_checked = True

    def put(self, name: str, src: BinaryIO, *, mtime: float | None = None) -> int:
        key = self._key(name)
        self._ensure_bucket()
        extra: dict[str, Any] = {}
        if mtime is not None:
            # The metadata rclone's S3 backend reads the modification time from.
            extra["Metadata"] = {"mtime": f"{mtime:.9f}"}
        head = b""
        if self._http is not None:
            # A small object (most of a dataset tree) goes up in one plain PUT when it can.
            head = read_up_to(src, _SMALL_PUT + 1)
            if len(head) <= _SMALL_PUT and self._fast_put(key, head, extra):
                return len(head)
        counted = _Counting(cast(BinaryIO, Prefixed(head, src)) if head else src)
        try:
            self._manager.upload(
                cast(BinaryIO, counted), self.bucket, key, extra_args=extra
            ).result()
        except SemlError:
            raise
        except Exception as e:  # botocore, s3transfer, urllib3 and OS errors alike
            raise self._error(name, "upload", e) from e
        return counted.count

    def _fast_put(self, key: str, data: bytes, extra: dict[str, Any]) -> bool:
        """PUT `data` through a presigned URL on the urllib3 pool; False (nothing to undo:
        S3 stores an object only when a PUT completes) when anything is unusual, and the
        caller uploads through botocore, with its retries and error mapping."""
        try:
            url = self._client.generate_presigned_url(
                "put_object", Params={"Bucket": self.bucket, "Key": key, **extra}, ExpiresIn=900
            )
            headers = {f"x-amz-meta-{k}": v for k, v in extra.get("Metadata", {}).items()}
            resp = self._http.request("PUT", url, body=data, headers=headers, redirect=False)
        except Exception:
            return False
        return bool(resp.status == 200)

    def open(
        self, name: str, *, start: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        from botocore.exceptions import BotoCoreError, ClientError

        key = self._key(name)
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if start or length is not None:
            if length == 0:
                return _empty()
            end = "" if length is None else str(start + length - 1)
            args["Range"] = f"bytes={start}-{end}"
        fast = self._fast_get(key, args.get("Range"))
        if fast is not None:
            return fast_body(fast, f"{self.url}{name}")
        try:
            resp = self._client.get_object(**args)
        except (BotoCoreError, ClientError) as e:
            raise self._error(name, "download", e) from e
        return _body(resp["Body"], self, name)

    def _fast_get(self, key: str, byte_range: str | None) -> Any:
        """The streaming urllib3 response of a GET through a presigned URL, or None when the
        fast path is off or the answer is anything but the expected 200/206 (then the caller
        repeats the request through botocore: retries with backoff, error codes mapped)."""
        if self._http is None:
            return None
        try:
            url = self._client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=900
            )
            resp = self._http.request(
                "GET",
                url,
                headers={"Range": byte_range} if byte_range else None,
                preload_content=False,
                decode_content=False,
                redirect=False,
            )
        except Exception:  # no credentials, connection refused, ...: botocore says it properly
            return None
        encoding = resp.headers.get("Content-Encoding", "") or "identity"
        if resp.status != (206 if byte_range else 200) or encoding.lower() != "identity":
            resp.close()
            resp.release_conn()
            return None
        return resp

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        from botocore.exceptions import BotoCoreError, ClientError

        root = f"{self.prefix}/" if self.prefix else ""
        try:
            pages = self._client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=root + prefix
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    key = obj["Key"]
                    if key.endswith("/"):
                        continue  # a folder marker some tools create
                    yield ObjectInfo(key[len(root) :], obj["Size"])
        except ClientError as e:
            if str(e.response.get("Error", {}).get("Code")) == "NoSuchBucket":
                return
            raise self._error(prefix, "list", e) from e
        except BotoCoreError as e:
            raise self._error(prefix, "list", e) from e

    def stat(self, name: str) -> ObjectInfo:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._key(name))
        except (BotoCoreError, ClientError) as e:
            raise self._error(name, "stat", e) from e
        return ObjectInfo(name, head["ContentLength"])

    def delete(self, name: str) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._key(name))
        except (BotoCoreError, ClientError) as e:
            raise self._error(name, "delete", e) from e


_malloc_tuned = False


def _keep_big_buffers_off_the_heap() -> None:
    """Make glibc return multi-MiB buffers (upload parts) to the OS when they are freed.

    glibc raises its mmap threshold each time a large block is freed, after which 8 MiB parts
    come from per-thread heaps that fragment and keep peak RSS far above what is in use. Fixing
    the threshold at 4 MiB keeps memory flat while the 1 MiB crypt buffers, allocated per file,
    stay on the fast heap path. No effect (and no error) off glibc.
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
def _body(body: Any, store: S3Store, name: str) -> Iterator[BinaryIO]:
    try:
        yield cast(BinaryIO, _BodyReader(body, store, name))
    finally:
        body.close()


class _BodyReader:
    """A streaming response body whose transport errors become StorageError."""

    def __init__(self, body: Any, store: S3Store, name: str) -> None:
        self._body = body
        self._store = store
        self._name = name

    def read(self, n: int = -1) -> bytes:
        from botocore.exceptions import BotoCoreError

        try:
            return cast(bytes, self._body.read(None if n < 0 else n))
        except (BotoCoreError, OSError) as e:
            raise self._store._error(self._name, "download", e) from e
        except Exception as e:  # urllib3 protocol errors do not share a base with the above
            if isinstance(e, SemlError):
                raise
            raise self._store._error(self._name, "download", e) from e
