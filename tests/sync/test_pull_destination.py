"""Where a pull (and `seml crypt decrypt`) writes plaintext: only inside the destination, never
through a symbolic link, in private folders; a non-empty destination only with --mirror."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from _sync_helpers import PushedTree, Tree, read_tree
from seml.cli import main
from seml.crypt import Cipher, decrypt_tree, encrypt_tree
from seml.errors import StorageError, UsageError
from seml.store import FileStore
from seml.sync import pull


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_pulled_plaintext_is_in_private_folders(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher
) -> None:
    remote, files = pushed
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)  # an existing empty folder, open to everyone
    pull(FileStore(remote), out, cipher, state_dir=tmp_path / "s")
    assert read_tree(out) == files
    folders = [out, *(p for p in out.rglob("*") if p.is_dir())]
    assert len(folders) > 4 and all(_mode(p) == 0o700 for p in folders)


def test_a_planted_folder_link_gets_no_plaintext(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher, elsewhere: Path
) -> None:
    remote, _ = pushed
    out = tmp_path / "out"
    out.mkdir()
    (out / "sub dir").symlink_to(elsewhere)  # the tree has "sub dir/nested/deep.txt"
    with pytest.raises(UsageError, match="is not empty"):
        pull(FileStore(remote), out, cipher, state_dir=tmp_path / "s")
    with pytest.raises(StorageError, match=r"out/sub dir: is a symbolic link; seml never writes"):
        pull(FileStore(remote), out, cipher, state_dir=tmp_path / "s", mirror=True)
    assert list(elsewhere.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["sub dir"]  # nothing placed, no staging


def test_a_folder_swapped_for_a_link_during_the_pull_gets_no_plaintext(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher, elsewhere: Path
) -> None:
    remote, _ = pushed
    out = tmp_path / "out"
    (out / "sub dir").mkdir(parents=True)  # passes the check before the download

    class SwapWhileFetching:
        swapped = False

        def start(self, action: str, files: int, total_bytes: int) -> None: ...
        def file_done(self, path: str, status: str) -> None: ...
        def warn(self, message: str) -> None: ...
        def finish(self) -> None: ...

        def advance(self, nbytes: int) -> None:
            if not self.swapped:
                self.swapped = True
                (out / "sub dir").rename(tmp_path / "moved")
                (out / "sub dir").symlink_to(elsewhere)

    hook = SwapWhileFetching()
    with pytest.raises(StorageError, match="sub dir: is a symbolic link"):
        pull(FileStore(remote), out, cipher, state_dir=tmp_path / "s", mirror=True, progress=hook)
    assert hook.swapped and list(elsewhere.iterdir()) == []
    assert list((tmp_path / "moved").iterdir()) == []


def test_links_at_final_names_are_replaced_and_links_the_remote_lacks_are_removed(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher, elsewhere: Path
) -> None:
    remote, files = pushed
    victim = elsewhere / "victim.txt"
    victim.write_bytes(b"theirs")
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.txt").symlink_to(victim)
    os.link(victim, out / "empty.txt")
    (out / "extra-link").symlink_to(elsewhere)
    pull(FileStore(remote), out, cipher, state_dir=tmp_path / "s", mirror=True)
    assert victim.read_bytes() == b"theirs" and victim.stat().st_nlink == 1
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.txt"]
    assert read_tree(out) == files and not any(p.is_symlink() for p in out.rglob("*"))


def test_the_destination_may_itself_be_a_link_the_user_made(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher, elsewhere: Path
) -> None:
    remote, files = pushed
    (tmp_path / "out").symlink_to(elsewhere)
    pull(FileStore(remote), tmp_path / "out", cipher, state_dir=tmp_path / "s")
    assert read_tree(elsewhere) == files and _mode(elsewhere) == 0o700


def test_leftover_staging_of_a_killed_pull_is_removed_and_does_not_count(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher
) -> None:
    remote, files = pushed
    out = tmp_path / "out"
    (out / ".seml-pull-0123456789ab" / "0").mkdir(parents=True)
    (out / ".seml-pull-0123456789ab" / "0" / "7").write_bytes(b"half a file")
    pull(FileStore(remote), out, cipher, state_dir=tmp_path / "s")
    assert read_tree(out) == files


def test_cli_dry_run_then_mirror(
    pushed: PushedTree, tmp_path: Path, crypt_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    remote, files = pushed
    out = tmp_path / "out"
    out.mkdir()
    (out / "one.txt").write_bytes(b"local edit")
    (out / "stale.csv").write_bytes(b"old")
    args = ["pull", remote.as_uri(), str(out), "--state-dir", str(tmp_path / "s")]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "is not empty: a pull would overwrite 1 local files and keep 1 entries" in err
    assert "--mirror" in err and "Traceback" not in err
    assert main([*args, "--mirror", "--dry-run"]) == 0
    shown = capsys.readouterr().out
    assert "replace: one.txt" in shown and "delete: stale.csv" in shown
    assert "write: twins/a.txt" in shown and "dry run, nothing written" in shown
    assert read_tree(out) == {"one.txt": b"local edit", "stale.csv": b"old"}
    assert main([*args, "--mirror", "-q"]) == 0
    assert read_tree(out) == files


def test_decrypt_never_writes_through_a_planted_link(
    tree: Tree, tmp_path: Path, cipher: Cipher, elsewhere: Path
) -> None:
    src, files = tree
    enc = tmp_path / "enc"
    encrypt_tree(src, enc, cipher)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o755)
    (out / "twins").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="twins: is a symbolic link"):
        decrypt_tree(enc, out, cipher)
    assert list(elsewhere.iterdir()) == []
    (out / "twins").unlink()
    (out / "one.txt").unlink()  # decrypted before "twins" was reached
    (out / "one.txt").symlink_to(elsewhere / "victim")  # a final-name link: replaced
    decrypt_tree(enc, out, cipher)
    assert read_tree(out) == files and list(elsewhere.iterdir()) == []
    assert all(_mode(p) == 0o700 for p in [out, *(p for p in out.rglob("*") if p.is_dir())])
