"""The push / pull / ls commands through the real entry point, on file://."""

from __future__ import annotations

import io
import shutil
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import pytest

from _sync_helpers import Tree, read_tree
from seml.cli import main
from seml.crypt import Cipher
from seml.errors import StorageError
from seml.store import FileStore
from seml.sync import pull, push


def test_plain_progress_and_summary(
    tree: Tree, tmp_path: Path, crypt_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    src, files = tree
    remote = (tmp_path / "remote").as_uri()
    assert main(["push", str(src), remote, "--state-dir", str(tmp_path / "s")]) == 0
    out, err = capsys.readouterr()
    assert f"push: {len(files)} files" in err and "uploaded: twins/a.txt" in err
    assert "/s)" in err  # the rate
    assert f"{len(files)} uploaded, 0 unchanged, 0 deleted; manifest version 1" in out
    assert main(["pull", remote, str(tmp_path / "out"), "--state-dir", str(tmp_path / "s")]) == 0
    out, err = capsys.readouterr()
    assert "verified: 日本語/ファイル.txt" in err
    assert f"pulled {len(files)} files" in out and "verified against manifest version 1" in out
    assert read_tree(tmp_path / "out") == files


def test_quiet_prints_nothing(
    tree: Tree, tmp_path: Path, crypt_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    src, _ = tree
    remote = str(tmp_path / "remote")
    assert main(["push", str(src), remote, "--quiet", "--state-dir", str(tmp_path / "s")]) == 0
    assert (
        main(["pull", remote, str(tmp_path / "o"), "-q", "--state-dir", str(tmp_path / "s")]) == 0
    )
    assert capsys.readouterr() == ("", "")


def test_rich_progress_on_a_terminal(tmp_path: Path) -> None:
    from rich.console import Console

    from seml.cli._sync import _RichProgress

    screen = io.StringIO()
    p = _RichProgress(Console(file=screen, force_terminal=True, width=100))
    p.start("push", 2, 1000)
    p.advance(600)
    p.advance(400)
    p.warn("a warning")
    p.finish()
    text = screen.getvalue()
    assert "push 2 files" in text and "a warning" in text and "1000" in text.replace(",", "")


def test_ls_marks_files_outside_the_manifest(
    tree: Tree, tmp_path: Path, crypt_env: None, capsys: pytest.CaptureFixture[str], cipher: Cipher
) -> None:
    src, _ = tree
    remote = tmp_path / "remote"
    assert main(["push", str(src), str(remote), "-q", "--state-dir", str(tmp_path / "s")]) == 0
    shutil.copy(remote / cipher.encrypt_name("one.txt"), remote / cipher.encrypt_name("x.txt"))
    (remote / "junk").write_bytes(b"not ours")
    assert main(["ls", remote.as_uri()]) == 0
    out, err = capsys.readouterr()
    assert "           1 ! x.txt" in out and "           1   one.txt" in out
    assert "junk: not encrypted with this key" in err and "manifest version 1" in err


def test_missing_password_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SEML_CRYPT_PASSWORD", raising=False)
    assert main(["ls", str(tmp_path)]) == 2
    assert "SEML_CRYPT_PASSWORD" in capsys.readouterr().err


def test_bad_remote_is_a_usage_error(
    tmp_path: Path, crypt_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ls", "ftp://host/x"]) == 2
    assert "unsupported scheme 'ftp'" in capsys.readouterr().err


class _BreaksOn(FileStore):
    """Reading one object fails halfway, like a connection that drops."""

    def __init__(self, root: Path, broken: str) -> None:
        super().__init__(root)
        self.broken = broken

    def open(
        self, name: str, *, start: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        if name != self.broken:
            return super().open(name, start=start, length=length)
        inner = super().open(name, start=start, length=length)

        class _Half:
            def __enter__(self) -> BinaryIO:
                f = inner.__enter__()
                f.read(40000)  # a partial read, then the transport fails
                inner.__exit__(None, None, None)
                raise StorageError(f"{name}: connection reset")

            def __exit__(self, *exc: object) -> None:
                pass

        return _Half()

    def open_file(self, name: str) -> BinaryIO:  # how pull reads a file:// object whole
        if name != self.broken:
            return super().open_file(name)
        raise StorageError(f"{name}: connection reset")


def test_interrupted_pull_leaves_nothing_under_final_names(
    tree: Tree, tmp_path: Path, cipher: Cipher
) -> None:
    src, _ = tree
    remote = tmp_path / "remote"
    push(src, FileStore(remote), cipher, state_dir=tmp_path / "s")
    store = _BreaksOn(remote, cipher.encrypt_name("exact128k.bin"))
    out = tmp_path / "out"
    with pytest.raises(StorageError, match="connection reset"):
        pull(store, out, cipher, state_dir=tmp_path / "s", transfers=1)
    assert list(out.iterdir()) == []  # no final file and no staging folder left


def test_ls_fails_for_a_missing_folder_and_a_wrong_key_as_rclone_does(
    tree: Tree,
    tmp_path: Path,
    crypt_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, _ = tree
    remote = tmp_path / "remote"
    assert main(["push", str(src), str(remote), "-q", "--state-dir", str(tmp_path / "s")]) == 0
    capsys.readouterr()
    assert main(["ls", str(tmp_path / "missing")]) == 6
    assert "missing/: no such folder or bucket" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["ls", str(tmp_path / "empty")]) == 0
    assert capsys.readouterr().err == "(empty)\n"
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", "not the password")
    assert main(["ls", str(remote)]) == 3
    out, err = capsys.readouterr()
    assert out == "" and "object names do not decrypt with this key: a wrong password" in err
    assert main(["pull", str(remote), str(tmp_path / "o"), "--state-dir", str(tmp_path / "s")]) == 3
    assert "do not decrypt with this key" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ls", "s3:/bucket/x"], "malformed s3 URL: write s3://bucket/prefix"),
        (["push", ".", "s3:bucket"], "malformed s3 URL"),
        (["pull", "s3:/b/x", "out"], "malformed s3 URL"),
        (["ls", "s3://bucket/x", "--s3-endpoint", "127.0.0.1:9000"], "is not an endpoint URL"),
        (["ls", "s3://bucket/x", "--s3-endpoint", "http://k:s@h:1"], "must not carry credentials"),
        (["ls", "s3://bucket/x", "--s3-timeout", "0"], "--s3-timeout"),
    ],
)
def test_malformed_remotes_and_endpoints_are_one_line_usage_errors(
    args: list[str],
    message: str,
    tmp_path: Path,
    crypt_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "out").exists()


def test_a_released_manifest_is_the_only_one_pulled(
    tree: Tree,
    tmp_path: Path,
    crypt_env: None,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A model service gated by a release rule takes only the manifest its owners approved
    (the attestation service sets SEML_RELEASED_MANIFEST); a later push is refused."""
    import json

    src, files = tree
    remote = (tmp_path / "remote").as_uri()
    assert main(["push", str(src), remote, "-q", "--state-dir", str(tmp_path / "s")]) == 0
    (approved,) = [
        r["digest"]
        for r in json.loads((tmp_path / "s" / "sync-versions.json").read_text()).values()
    ]
    (src / "one.txt").write_bytes(b"changed after the approval")
    assert main(["push", str(src), remote, "-q", "--state-dir", str(tmp_path / "s")]) == 0
    monkeypatch.setenv("SEML_RELEASED_MANIFEST", approved)
    code = main(["pull", remote, str(tmp_path / "out"), "-q", "--state-dir", str(tmp_path / "p")])
    assert code == 3
    err = capsys.readouterr().err
    assert "manifest version 2" in err and "is not the expected manifest" in err
    assert "the model in storage is not the one its owners approved" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    now = json.loads((tmp_path / "s" / "sync-versions.json").read_text())
    monkeypatch.setenv("SEML_RELEASED_MANIFEST", next(iter(now.values()))["digest"])
    code = main(["pull", remote, str(tmp_path / "out"), "-q", "--state-dir", str(tmp_path / "p")])
    assert code == 0
    assert read_tree(tmp_path / "out")["one.txt"] == b"changed after the approval"
    del files
