"""The ObjectStore contract on every backend: memory, file:// and a real SeaweedFS over S3."""

from __future__ import annotations

import io
import itertools
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from _seaweedfs import SeaweedFS
from seml.errors import IntegrityError, StorageError, UsageError
from seml.store import (
    FileStore,
    MemoryStore,
    ObjectNotFound,
    ObjectStore,
    S3Config,
    S3Store,
    open_store,
    s3_config_from_env,
)

_buckets = itertools.count()


@pytest.fixture
def s3(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> S3Config:
    """Credentials in the environment (boto3's chain); the endpoint passed in, as open_store
    does."""
    for k, v in seaweedfs.env.items():
        monkeypatch.setenv(k, v)
    return S3Config(endpoint=seaweedfs.endpoint)


@pytest.fixture(params=["memory", "file", pytest.param("s3", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "file":
        yield FileStore(tmp_path / "root")
    else:
        config = replace(request.getfixturevalue("s3"), part_size=5 << 20)
        yield S3Store(f"store-test-{next(_buckets)}", "some/prefix", config)


def test_put_get_list_stat_delete(store: ObjectStore) -> None:
    assert list(store.list()) == []
    assert store.put("a/b/c.bin", io.BytesIO(b"0123456789")) == 10
    assert store.put("a/empty", io.BytesIO(b"")) == 0
    assert store.put("top", io.BytesIO(b"x")) == 1
    assert sorted((o.name, o.size) for o in store.list()) == [
        ("a/b/c.bin", 10),
        ("a/empty", 0),
        ("top", 1),
    ]
    assert sorted(o.name for o in store.list("a/")) == ["a/b/c.bin", "a/empty"]
    with store.open("a/b/c.bin") as f:
        assert f.read() == b"0123456789"
    with store.open("a/b/c.bin", start=3, length=4) as f:
        assert f.read() == b"3456"
    with store.open("a/b/c.bin", start=8) as f:
        assert f.read() == b"89"
    assert store.stat("a/b/c.bin").size == 10
    store.put("top", io.BytesIO(b"replaced"))
    with store.open("top") as f:
        assert f.read() == b"replaced"
    store.delete("a/b/c.bin")
    store.delete("a/b/c.bin")  # deleting a missing object is fine
    assert sorted(o.name for o in store.list()) == ["a/empty", "top"]


def test_missing_object_is_named(store: ObjectStore) -> None:
    with pytest.raises(ObjectNotFound, match="nothing/here"):
        store.stat("nothing/here")
    with pytest.raises(ObjectNotFound, match="nothing/here"):
        store.open("nothing/here").__enter__()


@pytest.mark.parametrize("name", ["", "/abs", "a/../b", "a//b", "./a"])
def test_bad_names_are_refused(store: ObjectStore, name: str) -> None:
    with pytest.raises(StorageError, match="invalid object name"):
        store.put(name, io.BytesIO(b"x"))


class _Exploding(io.RawIOBase):
    def readinto(self, b: Any) -> int:
        raise StorageError("source broke")


def test_file_store_write_is_atomic(tmp_path: Path) -> None:
    store = FileStore(tmp_path)
    store.put("x", io.BytesIO(b"old"))
    with pytest.raises(StorageError, match="source broke"):
        store.put("x", _Exploding())  # type: ignore[arg-type]
    assert (tmp_path / "x").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["x"]


def test_file_store_os_errors_become_storage_errors(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    store = FileStore(tmp_path)
    with pytest.raises(StorageError, match=r"blocker/x: cannot write object") as e:
        store.put("blocker/x", io.BytesIO(b"x"))
    assert isinstance(e.value.__cause__, OSError)


@pytest.mark.integration
def test_s3_multipart_large_object(s3: S3Config) -> None:
    bucket = f"store-test-{next(_buckets)}"
    store = S3Store(bucket, "", replace(s3, part_size=5 << 20, concurrency=3, memory_parts=3))
    data = os.urandom(1 << 20) * 12 + b"tail"  # 12 MiB + 4 bytes: three parts
    assert store.put("big", io.BytesIO(data)) == len(data)
    assert store.stat("big").size == len(data)
    # Streamed in parts (a multipart ETag), never read whole into memory.
    etag = store._client.head_object(Bucket=bucket, Key="big")["ETag"]
    assert etag.strip('"').endswith("-3"), etag
    with store.open("big", start=(5 << 20) - 2, length=4) as f:
        assert f.read() == data[(5 << 20) - 2 : (5 << 20) + 2]
    with store.open("big") as f:
        assert f.read() == data


def test_s3_unreachable_endpoint_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "SECRET-must-not-appear")
    store = S3Store("bkt", "p", S3Config(endpoint=f"http://127.0.0.1:{port}", max_attempts=1))
    with pytest.raises(StorageError, match=r"s3://bkt/p/obj .*endpoint .*cannot stat") as e:
        store.stat("obj")
    assert e.value.__cause__ is not None
    assert "SECRET-must-not-appear" not in str(e.value)


def test_open_store_urls(tmp_path: Path) -> None:
    assert isinstance(open_store(str(tmp_path)), FileStore)
    f = open_store(tmp_path.as_uri())
    assert isinstance(f, FileStore) and f.root == tmp_path
    s = open_store("s3://bucket/a/b", s3_endpoint="http://127.0.0.1:1")
    assert isinstance(s, S3Store) and (s.bucket, s.prefix) == ("bucket", "a/b")
    assert s.url == "s3://bucket/a/b/"
    for bad, reason in [
        ("", "empty remote"),
        ("s3://", "s3:// URL needs a bucket name"),
        ("ftp://x/y", "unsupported scheme 'ftp'"),
        ("file://host/x", "file:// URL must name a local path"),
    ]:
        with pytest.raises(UsageError, match=reason):
            open_store(bad)


@pytest.mark.integration
def test_s3_plain_http_reads_skip_botocore_and_fall_back(
    s3: S3Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = S3Store(f"store-test-{next(_buckets)}", "p", s3)
    data = os.urandom(300_000)
    store.put("obj", io.BytesIO(data))

    def no_botocore(*a: object, **kw: object) -> None:
        raise AssertionError("a plain-http GET should not go through botocore")

    with monkeypatch.context() as m:
        m.setattr(store._client, "get_object", no_botocore)
        with store.open("obj") as f:
            assert f.read() == data
        with store.open("obj", start=70_000, length=100_000) as f:
            assert f.read() == data[70_000:170_000]
        with store.open("obj", start=1000, length=10) as f:  # read partly: connection dropped
            assert f.read(3) == data[1000:1003]
    # Small objects go up in one plain PUT, with rclone's mtime metadata; larger ones and
    # the boundary through s3transfer.
    for n in (0, 1 << 20, (1 << 20) + 1):
        blob = os.urandom(n)
        with monkeypatch.context() as m:
            if n <= 1 << 20:
                m.setattr(store._manager, "upload", no_botocore)
            assert store.put(f"put-{n}", io.BytesIO(blob), mtime=1234.5) == n
        head = store._client.head_object(Bucket=store.bucket, Key=f"p/put-{n}")
        assert head["Metadata"] == {"mtime": "1234.500000000"} and head["ContentLength"] == n
        with store.open(f"put-{n}") as f:
            assert f.read() == blob
    # A missing object answers 404: the botocore path repeats it and names the object.
    with pytest.raises(ObjectNotFound, match="p/missing"):
        store.open("missing")


def test_configuration_is_read_at_the_edge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEML_S3_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    assert s3_config_from_env() == S3Config(endpoint="http://127.0.0.1:9", max_attempts=2)
    assert s3_config_from_env("http://other:1").endpoint == "http://other:1"
    s = open_store("s3://bucket/p")
    assert isinstance(s, S3Store) and s.endpoint == "http://127.0.0.1:9"
    assert s.config.max_attempts == 2 and s.config.wants_fast_path
    # The adapter itself reads nothing from the environment.
    assert S3Store("bucket").endpoint is None
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "many")
    with pytest.raises(UsageError, match="AWS_MAX_ATTEMPTS must be an integer, not 'many'"):
        open_store("s3://bucket/p")


class _Flaky(MemoryStore):
    """A backend whose reads fail with `error` after the first few bytes."""

    def __init__(self, error: Exception) -> None:
        super().__init__("flaky://")
        self.error = error

    def _open(self, name: str, start: int, length: int | None) -> Any:
        error = self.error

        class Body(io.BytesIO):
            def read(self, n: int | None = -1) -> bytes:
                if self.tell():
                    raise error
                return super().read(4)

        return nullcontext(Body(b"0123456789"))

    def _stat(self, name: str) -> Any:
        raise self.error


def test_foreign_errors_are_converted_in_one_place() -> None:
    store = _Flaky(ConnectionResetError(104, "Connection reset by peer"))
    with (
        store.open("obj") as f,
        pytest.raises(StorageError, match="flaky://obj: cannot download: Connection reset") as e,
    ):
        assert f.read() == b"0123"
        f.read()
    assert isinstance(e.value.__cause__, ConnectionResetError)
    with pytest.raises(ObjectNotFound, match="flaky://gone: no such object"):
        _Flaky(FileNotFoundError(2, "No such file")).stat("gone")


def test_our_errors_and_bugs_are_not_disguised() -> None:
    with pytest.raises(IntegrityError, match="tampered"):
        _Flaky(IntegrityError("tampered")).stat("x")
    with pytest.raises(TypeError, match="a bug"):
        _Flaky(TypeError("a bug")).stat("x")


def test_move_replaces_the_target_whole(store: ObjectStore) -> None:
    big = os.urandom(11 << 20)  # on S3: a copy in parts (part size 5 MiB here)
    store.put("staging/x/new", io.BytesIO(big), mtime=1234.5)
    store.put("final/old", io.BytesIO(b"the previous version"))
    store.move("staging/x/new", "final/old")
    assert sorted(o.name for o in store.list()) == ["final/old"]
    with store.open("final/old") as f:
        assert f.read() == big
    if isinstance(store, S3Store):  # the modification time rclone reads moved with it
        head = store._client.head_object(Bucket=store.bucket, Key=store._key("final/old"))
        assert head["Metadata"] == {"mtime": "1234.500000000"}
    with pytest.raises(ObjectNotFound, match="staging/x/new"):
        store.move("staging/x/new", "elsewhere")
    assert store.exists()


def test_a_missing_root_is_told_apart_from_an_empty_one(tmp_path: Path, s3: S3Config) -> None:
    assert not FileStore(tmp_path / "missing").exists()
    (tmp_path / "empty").mkdir()
    assert FileStore(tmp_path / "empty").exists()
    assert not S3Store("never-created-bucket", "p", s3).exists()
    made = S3Store(f"store-test-{next(_buckets)}", "p", s3)
    made.put("x", io.BytesIO(b"x"))
    made.delete("x")
    assert made.exists() and list(made.list()) == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("s3:/bucket/x", r"malformed s3 URL: write s3://bucket/prefix"),
        ("s3:bucket", r"malformed s3 URL"),
        ("S3://bucket/x", r"malformed S3 URL: write s3://"),
        ("file:/tmp/x", r"malformed file URL: write file:///absolute/path"),
        ("file:///tmp/x?y=1", r"file:///absolute/path \(nothing after it\)"),
        ("http://host/bucket", r"unsupported scheme 'http'"),
        ("data:2024/x", r"unsupported scheme 'data'.*write ./data:2024/x"),
        ("s3://ab/x", r"'ab' is not a bucket name"),
        ("s3://bucket name/x", r"is not a bucket name"),
        ("s3://bucket/a//b", r"the prefix has an empty, '.' or '..' part"),
        ("s3://bucket/a/../b", r"the prefix has an empty, '.' or '..' part"),
    ],
)
def test_anything_that_looks_like_a_url_but_is_not_ours_is_refused(
    url: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UsageError, match=reason):
        open_store(url)
    assert list(tmp_path.iterdir()) == []  # no folder named "s3:" or "file:"


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("127.0.0.1:9000", "is not an endpoint URL: give http://HOST:PORT"),
        ("localhost", "is not an endpoint URL"),
        ("ftp://127.0.0.1:9000", "is not an endpoint URL"),
        ("http://", "is not an endpoint URL"),
        ("http://host:notaport", "is not an endpoint URL"),
        ("http://host:9000?x=1", "is not an endpoint URL"),
        ("http://key:secret@host:9000", "must not carry credentials"),
    ],
)
def test_malformed_endpoints_are_refused(endpoint: str, reason: str) -> None:
    with pytest.raises(UsageError, match=f"--s3-endpoint.*{reason}"):
        s3_config_from_env(endpoint, {})
    with pytest.raises(UsageError, match=r"\$SEML_S3_ENDPOINT"):
        s3_config_from_env(None, {"SEML_S3_ENDPOINT": endpoint})
    with pytest.raises(UsageError, match=reason):
        open_store("s3://bucket/p", s3_endpoint=endpoint, s3=S3Config())


def test_time_limits_are_read_at_the_edge_and_never_exceed_the_total() -> None:
    env = {"SEML_S3_TIMEOUT": "4", "SEML_S3_READ_TIMEOUT": "30", "SEML_S3_CONNECT_TIMEOUT": "2"}
    c = s3_config_from_env(None, env)
    assert (c.timeout, c.read_timeout, c.connect_timeout) == (4.0, 4.0, 2.0)
    assert s3_config_from_env(None, env, timeout=1.5).read_timeout == 1.5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(UsageError, match="SEML_S3_TIMEOUT must be a positive number"):
            s3_config_from_env(None, {"SEML_S3_TIMEOUT": bad})


def test_a_body_that_trickles_is_cut_off() -> None:
    from seml.store import _s3

    config = S3Config(timeout=5, min_rate=1000)
    body = _s3._Deadline(io.BytesIO(b"x" * 5000), deadline=-100.0, config=config)
    with pytest.raises(_s3._OutOfTime, match="slower than --s3-timeout 5 s plus 1000 bytes"):
        body.read(100)
    fine = _s3._Deadline(io.BytesIO(b"x" * 5000), deadline=1e12, config=config)
    assert fine.read() == b"x" * 5000


@pytest.mark.slow
@pytest.mark.integration
def test_a_stalled_server_fails_each_request_in_bounded_time(
    s3: S3Config, seaweedfs: SeaweedFS
) -> None:
    """SeaweedFS paused with SIGSTOP (it accepts connections, never answers): every kind of
    request gives up after its time, naming the endpoint, although retries are plenty."""
    S3Store("stalled", "p", s3).put("obj", io.BytesIO(b"data"))
    config = replace(s3, max_attempts=50, timeout=1, connect_timeout=0.5, read_timeout=0.5)
    store = S3Store("stalled", "p", config)
    seaweedfs.pause()
    try:

        def download() -> bytes:
            with store.open("obj") as f:
                return f.read()

        calls: list[tuple[str, Callable[[], object]]] = [
            ("list", lambda: list(store.list())),
            ("download", download),
            ("upload", lambda: store.put("new", io.BytesIO(os.urandom(2 << 20)))),
            ("stat", lambda: store.stat("obj")),
        ]
        for what, call in calls:
            t = time.monotonic()
            with pytest.raises(StorageError, match=rf"\(endpoint {seaweedfs.endpoint}\).*in"):
                call()
            took = time.monotonic() - t
            # timeout + connect + read + slack; 50 attempts of 0.5 s each would take 25 s
            assert took < 1 + 0.5 + 0.5 + 2, (what, took)
    finally:
        seaweedfs.resume()


@pytest.mark.integration
def test_s3_fast_reads_fill_the_callers_buffer_and_reuse_the_connection(s3: S3Config) -> None:
    """The fast path reads bodies straight into the reader's buffer (`readinto`); a body read
    to its end hands its connection back, one read partly does not."""
    store = S3Store(f"store-test-{next(_buckets)}", "p", s3)
    data = os.urandom(3 << 20)
    store.put("obj", io.BytesIO(data))
    assert store._fast is not None
    for _ in range(3):
        with store.open("obj", start=5, length=(2 << 20) + 7) as f:
            buf = bytearray(len(data))
            got = 0
            while n := _readinto(f, memoryview(buf)[got:]):
                got += n
            assert bytes(buf[:got]) == data[5 : 5 + (2 << 20) + 7]
    pool = store._fast._pool
    assert pool is not None

    def sockets() -> list[object]:
        # The socket objects themselves: holding the old one keeps its identity from being
        # reused by the next connection's socket (ids of freed objects are).
        assert pool.pool is not None
        return [c.sock for c in list(pool.pool.queue) if c is not None and c.sock]

    assert len(sockets()) == 1  # the three bodies came on one connection
    reused = sockets()
    with store.open("obj") as f:
        assert _readinto(f, bytearray(10)) == 10
    assert sockets() == []  # read partly: its connection was closed, not pooled
    with store.open("obj") as f:  # a new connection, which carries nothing of the last body
        assert f.read() == data
    now = sockets()
    assert len(now) == 1 and now[0] is not reused[0]


@pytest.mark.integration
def test_s3_bodies_are_not_signed_but_requests_are(s3: S3Config) -> None:
    """Uploads (multipart parts included) carry UNSIGNED-PAYLOAD, not a SHA-256 of every body:
    the content is encrypted and authenticated by the signed manifest; headers stay signed."""
    store = S3Store(f"store-test-{next(_buckets)}", "", replace(s3, part_size=5 << 20))
    seen: list[tuple[str, str, bool]] = []

    def record(request: Any, **_: Any) -> None:
        sha = request.headers.get("X-Amz-Content-SHA256", b"")
        auth = request.headers.get("Authorization", b"")
        seen.append((request.method, _text(sha), _text(auth).startswith("AWS4-HMAC-SHA256")))

    store._client.meta.events.register("before-send.s3", record)
    data = os.urandom(11 << 20)  # three parts
    assert store.put("big", io.BytesIO(data)) == len(data)
    puts = [s for s in seen if s[0] == "PUT"]
    assert len(puts) >= 3 and all(s[1] == "UNSIGNED-PAYLOAD" and s[2] for s in puts), seen
    with store.open("big") as f:
        assert f.read() == data


def _readinto(f: Any, b: bytearray | memoryview) -> int:
    """`readinto` of a store's reader (typed as BinaryIO, which does not declare it)."""
    return int(f.readinto(b))


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _fake_s3(answer: bytes) -> tuple[str, Callable[[], None]]:
    """An endpoint that answers every request with `answer` and then holds the connection
    open until stopped (a body cut short, or one that stalls)."""
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    stop = threading.Event()
    held: list[socket.socket] = []

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            held.append(conn)
            conn.recv(65536)
            conn.sendall(answer)

    threading.Thread(target=serve, daemon=True).start()

    def close() -> None:
        stop.set()
        server.close()
        for c in held:
            c.close()

    return f"http://127.0.0.1:{server.getsockname()[1]}", close


@pytest.mark.parametrize("closes", [True, False], ids=["cut-short", "stalls"])
def test_a_fast_path_body_that_ends_early_or_stalls_is_a_storage_error(
    closes: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b"x" * 1000
    endpoint, close = _fake_s3(head)
    try:
        config = S3Config(endpoint=endpoint, max_attempts=1, read_timeout=0.5, timeout=1)
        store = S3Store("bkt", "p", config)
        buf = bytearray(100000)
        with store.open("obj") as f:
            assert _readinto(f, memoryview(buf)[:1000]) == 1000
            if closes:
                close()
                cut = r"s3://bkt/p/obj .*the connection ended after 0 more bytes of the body"
                with pytest.raises(StorageError, match=cut):
                    _readinto(f, buf)
            else:
                t = time.monotonic()
                with pytest.raises(StorageError, match=r"s3://bkt/p/obj .*no answer in time"):
                    _readinto(f, buf)
                assert time.monotonic() - t < 3
    finally:
        close()


@pytest.mark.parametrize(
    ("endpoint", "token"),
    [("http://127.0.0.1:8333", None), ("https://s3.example.org", "SESSION/TOKEN+=")],
)
@pytest.mark.parametrize("key", ["p/obj", "p/a b~c/.seml-staging/\u00e9+=%?#", "k"])
def test_our_presigned_urls_are_botocores(
    endpoint: str, token: str | None, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path signs its GETs itself (SigV4 query signing); the URL must be exactly the
    one botocore's s3v4 presigner makes for the same request at the same time."""
    from datetime import UTC, datetime
    from urllib.parse import parse_qs, urlsplit

    import boto3
    from botocore.config import Config

    from seml.store._s3fast import QuerySigner

    now = 1796040000.0
    frozen = datetime.fromtimestamp(now, UTC).replace(tzinfo=None)
    monkeypatch.setattr("botocore.auth.get_current_datetime", lambda: frozen)
    client = boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="eu-west-3",
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        aws_session_token=token,
        config=Config(signature_version="s3v4", s3={"addressing_style": "path"}),
    )
    theirs = client.generate_presigned_url(
        "get_object", Params={"Bucket": "bkt", "Key": key}, ExpiresIn=900
    )
    signer = QuerySigner(
        endpoint,
        "eu-west-3",
        lambda: ("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token),
    )
    ours = signer.url("GET", "bkt", key, expires=900, now=now)
    a, b = urlsplit(ours), urlsplit(theirs)
    assert (a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path)
    assert parse_qs(a.query, strict_parsing=True) == parse_qs(b.query, strict_parsing=True)
    assert "X-Amz-Signature=" in ours and (token is None) == ("Security-Token" not in ours)
    # A different secret, key or time signs differently.
    other = QuerySigner(endpoint, "eu-west-3", lambda: ("AKIDEXAMPLE", "other", token))
    assert other.url("GET", "bkt", key, expires=900, now=now) != ours
    assert signer.url("GET", "bkt", key + "x", expires=900, now=now) != ours
    assert signer.url("GET", "bkt", key, expires=900, now=now + 1) != ours


def test_endpoints_with_a_path_are_left_to_botocore() -> None:
    from seml.store._s3fast import QuerySigner

    with pytest.raises(ValueError, match="not a plain endpoint URL"):
        QuerySigner("http://host:9000/base", "us-east-1", lambda: ("a", "b", None))


@pytest.mark.integration
def test_s3_fast_reads_with_botocores_presigner(s3: S3Config) -> None:
    """Where our signer does not apply (an endpoint with a path), botocore presigns the GET."""
    store = S3Store(f"store-test-{next(_buckets)}", "p", s3)
    data = os.urandom(200_000)
    store.put("obj", io.BytesIO(data))
    assert store._fast is not None
    store._fast._signer = store._fast._pool = None
    with store.open("obj", start=10, length=1000) as f:
        assert f.read() == data[10:1010]
