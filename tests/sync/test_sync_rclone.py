"""Interop with the real rclone (S3 remote + crypt remote over it) on the same SeaweedFS bucket
and on a local folder, both directions."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from _seaweedfs import SeaweedFS
from _sync_helpers import PASSWORD, PASSWORD2, Tree, read_tree
from seml.cli import main
from seml.crypt import obscure
from seml.sync import MANIFEST_NAME

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("rclone") is None, reason="rclone not installed (apt install rclone)"
    ),
]


# rclone 1.60's S3 backend cannot apply AWS_CA_BUNDLE to its own HTTP transport and refuses to
# start when it is set; the endpoint here is plain HTTP on loopback, so drop it for rclone.
RCLONE_ENV = {k: v for k, v in os.environ.items() if k != "AWS_CA_BUNDLE"}


def _config(path: Path, seaweedfs: SeaweedFS, crypt_over: dict[str, str]) -> Path:
    lines = [
        "[s3]",
        "type = s3",
        "provider = SeaweedFS",
        f"access_key_id = {seaweedfs.access_key}",
        f"secret_access_key = {seaweedfs.secret_key}",
        f"endpoint = {seaweedfs.endpoint}",
        "",
    ]
    for name, remote in crypt_over.items():
        lines += [
            f"[{name}]",
            "type = crypt",
            f"remote = {remote}",
            f"password = {obscure(PASSWORD)}",
            f"password2 = {obscure(PASSWORD2)}",
            "",
        ]
    path.write_text("\n".join(lines))
    path.chmod(0o600)
    return path


def _rclone(conf: Path, *args: str) -> str:
    proc = subprocess.run(
        ["rclone", "--config", str(conf), "--low-level-retries", "2", "--retries", "1", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=RCLONE_ENV,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_rclone_reads_what_seml_pushed_to_s3(
    s3_bucket: str,
    seaweedfs: SeaweedFS,
    tree: Tree,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, files = tree
    conf = _config(tmp_path / "rclone.conf", seaweedfs, {"secret": f"s3:{s3_bucket}/enc"})
    # Keys straight from the rclone config: the same secret both tools use.
    monkeypatch.delenv("SEML_CRYPT_PASSWORD", raising=False)
    args = ["--rclone-config", str(conf), "--remote", "secret", "--state-dir", str(tmp_path / "s")]
    assert main(["push", str(src), f"s3://{s3_bucket}/enc", "--quiet", *args]) == 0
    listed = _rclone(conf, "ls", "secret:")
    for rel, data in files.items():
        assert f"{len(data)} {rel}" in listed
    assert MANIFEST_NAME in listed  # the one extra file rclone sees
    _rclone(conf, "check", "--download", str(src), "secret:", "--exclude", MANIFEST_NAME)
    out = tmp_path / "by-rclone"
    _rclone(conf, "copy", "secret:", str(out), "--exclude", MANIFEST_NAME)
    assert read_tree(out) == files
    assert (
        _rclone(conf, "cat", "secret:sub dir/nested/deep.txt").encode()
        == files["sub dir/nested/deep.txt"]
    )


def test_seml_pulls_what_rclone_copied_to_s3(
    s3_bucket: str,
    seaweedfs: SeaweedFS,
    tree: Tree,
    tmp_path: Path,
    crypt_env: None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    src, files = tree
    conf = _config(tmp_path / "rclone.conf", seaweedfs, {"secret": f"s3:{s3_bucket}/by-rclone"})
    _rclone(conf, "copy", str(src), "secret:")
    url = f"s3://{s3_bucket}/by-rclone"
    state = ["--state-dir", str(tmp_path / "s")]
    assert main(["pull", url, str(tmp_path / "refused"), *state]) == 3
    assert "--no-manifest" in capsys.readouterr().err
    assert not (tmp_path / "refused").exists()
    assert main(["pull", url, str(tmp_path / "out"), "--no-manifest", *state]) == 0
    captured = capsys.readouterr()
    assert "WITHOUT a manifest" in captured.err and "UNVERIFIED" in captured.out
    assert read_tree(tmp_path / "out") == files
    # Adopting the tree: a seml push over it uploads again (no digests known) and adds the manifest.
    assert main(["push", str(src), url, "--quiet", *state]) == 0
    assert main(["pull", url, str(tmp_path / "verified"), "--quiet", *state]) == 0
    assert read_tree(tmp_path / "verified") == files


def test_local_folder_both_directions(tree: Tree, tmp_path: Path, crypt_env: None) -> None:
    src, files = tree
    remote = tmp_path / "remote"
    conf = tmp_path / "rclone.conf"
    conf.write_text(
        f"[local]\ntype = crypt\nremote = {remote}\npassword = {obscure(PASSWORD)}\n"
        f"password2 = {obscure(PASSWORD2)}\n"
    )
    state = ["--state-dir", str(tmp_path / "s"), "--quiet"]
    assert main(["push", str(src), remote.as_uri(), *state]) == 0
    _rclone(conf, "check", "--download", str(src), "local:", "--exclude", MANIFEST_NAME)
    (src / "added by rclone.txt").write_bytes(b"rclone wrote this")
    _rclone(conf, "copy", str(src), "local:")
    assert main(["pull", str(remote), str(tmp_path / "out"), *state]) == 3  # not in manifest
    assert main(["pull", str(remote), str(tmp_path / "out"), "--no-manifest", *state]) == 0
    assert read_tree(tmp_path / "out") == dict(
        files, **{"added by rclone.txt": b"rclone wrote this"}
    )
