"""`seml._fs`: files appear whole or not at all, flushed with their folder; secrets are 0600
from the first byte; nothing is left under a temporary name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import seml._fs as fs
from seml._fs import (
    Folder,
    atomic_writer,
    commit,
    is_temp,
    staged,
    sync_filesystem,
    temp_path,
    write_atomic,
)
from seml.errors import StorageError


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_write_atomic_flushes_the_file_then_its_folder(tmp_path: Path, fsyncs: list[str]) -> None:
    target = tmp_path / "state.json"
    write_atomic(target, '{"v": 1}')
    assert target.read_text() == '{"v": 1}'
    assert fsyncs == ["file", "dir"]
    assert _names(tmp_path) == ["state.json"]


def test_secret_mode_and_replacing(tmp_path: Path) -> None:
    key = tmp_path / "a.key"
    write_atomic(key, b"first", mode=0o600)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    write_atomic(key, b"second", mode=0o600)
    assert key.read_bytes() == b"second"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_no_overwrite_refuses_and_keeps_the_old_file(tmp_path: Path) -> None:
    key = tmp_path / "platform.key"
    write_atomic(key, b"old", overwrite=False)
    with pytest.raises(FileExistsError):
        write_atomic(key, b"new", overwrite=False)
    assert key.read_bytes() == b"old"
    assert _names(tmp_path) == ["platform.key"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError, match="writer broke"), atomic_writer(target) as f:
        f.write(b"half of the new")
        raise RuntimeError("writer broke")
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["out.bin"]


def test_staged_outputs_appear_together_or_not_at_all(tmp_path: Path) -> None:
    a, b = tmp_path / "out" / "model.skops", tmp_path / "out" / "metrics.json"
    with pytest.raises(ValueError, match="second output failed"), staged(a, b) as (ta, tb):
        ta.write_bytes(b"model")
        raise ValueError("second output failed")
    assert _names(tmp_path / "out") == []
    with staged(a, b) as (ta, tb):
        ta.write_bytes(b"model")
        tb.write_text("{}")
    assert (a.read_bytes(), b.read_text()) == (b"model", "{}")
    assert sorted(_names(tmp_path / "out")) == ["metrics.json", "model.skops"]


def test_unwritable_destination_is_a_storage_error(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"")
    with pytest.raises(StorageError, match=r"cannot write .*blocker/x: Not a directory"):
        write_atomic(tmp_path / "blocker" / "x", b"data")
    tmp = tmp_path / "written"
    tmp.write_bytes(b"x")
    with pytest.raises(StorageError, match=r"cannot write .*missing/y: No such file"):
        commit(tmp, tmp_path / "missing" / "y")


def test_temporary_names_are_recognisable_and_short_enough(tmp_path: Path) -> None:
    long = tmp_path / ("n" * 250)
    tmp = temp_path(long)
    assert tmp.parent == tmp_path and len(tmp.name) < 255
    assert is_temp(tmp.name) and is_temp(temp_path(tmp_path / "a.csv").name)
    assert not is_temp("a.csv") and not is_temp(".hidden.tmp") and not is_temp("x.0123abcd4567.tmp")


def test_sync_filesystem_flushes_with_syncfs_else_sync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(os, "sync", lambda: calls.append("sync"))
    sync_filesystem(tmp_path)
    assert calls == []  # syncfs(2) did it (Linux)
    monkeypatch.setattr(fs, "_syncfs", lambda fd: -1)
    sync_filesystem(tmp_path)
    assert calls == ["sync"]
    with pytest.raises(StorageError, match=r"cannot write .*missing"):
        sync_filesystem(tmp_path / "missing")


# -- Folder: names from data are written below the destination, never through a link --------


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """Where a planted link points: must stay empty."""
    path = tmp_path / "elsewhere"
    path.mkdir()
    return path


def test_a_planted_folder_link_is_refused_and_nothing_leaves(
    tmp_path: Path, elsewhere: Path
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    (dst / "sub").symlink_to(elsewhere)
    with Folder.open(dst, private=True) as folder:
        with pytest.raises(StorageError, match=r"dst/sub: is a symbolic link; seml never writes"):
            folder.write("sub/secret.csv", b"plaintext")
        with pytest.raises(StorageError, match="is a symbolic link"):
            folder.create("sub/deeper/x")
        with pytest.raises(StorageError, match="is a symbolic link"):
            folder.make_folders("sub/deeper")
        with pytest.raises(StorageError, match="is a symbolic link"):
            folder.check_folder("sub")
    assert list(elsewhere.iterdir()) == []


def test_a_link_or_hard_link_at_the_final_name_is_replaced_not_written_through(
    tmp_path: Path, elsewhere: Path
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    outside = elsewhere / "victim.txt"
    outside.write_bytes(b"theirs")
    (dst / "a.txt").symlink_to(outside)
    os.link(outside, dst / "b.txt")
    with Folder.open(dst) as folder:
        folder.write("a.txt", b"ours")
        folder.write("b.txt", b"ours")
        with pytest.raises(StorageError, match=r"cannot write .*c\.txt: File exists"):
            (dst / "c.txt").symlink_to(outside)
            os.close(folder.create("c.txt"))  # a new file never opens an existing entry
    assert outside.read_bytes() == b"theirs" and outside.stat().st_nlink == 1
    assert (dst / "a.txt").read_bytes() == b"ours" and not (dst / "a.txt").is_symlink()
    assert (dst / "b.txt").read_bytes() == b"ours"


def test_a_folder_swapped_for_a_link_after_it_was_opened_changes_nothing(
    tmp_path: Path, elsewhere: Path
) -> None:
    dst = tmp_path / "dst"
    (dst / "sub").mkdir(parents=True)
    with Folder.open(dst) as folder, folder.folder("sub") as fd:
        # Someone moves the folder away and plants a link under its name: what was opened is
        # what is written.
        (dst / "sub").rename(tmp_path / "moved")
        (dst / "sub").symlink_to(elsewhere)
        os.close(os.open("x", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=fd))
    assert list(elsewhere.iterdir()) == [] and (tmp_path / "moved" / "x").exists()
    with Folder.open(dst) as folder, pytest.raises(StorageError, match="is a symbolic link"):
        folder.write("sub/y", b"data")  # opened afresh: the link is seen and refused
    assert list(elsewhere.iterdir()) == []


def test_a_private_folder_and_its_new_folders_are_0700(tmp_path: Path) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    dst.chmod(0o777)
    with Folder.open(dst, private=True) as folder:
        folder.write("a/b/c.txt", b"x")
    for path in (dst, dst / "a", dst / "a" / "b"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    with Folder.open(tmp_path / "new" / "deep", private=True):
        pass
    assert stat.S_IMODE((tmp_path / "new" / "deep").stat().st_mode) == 0o700


def test_the_destination_itself_may_be_a_link_the_user_made(
    tmp_path: Path, elsewhere: Path
) -> None:
    (tmp_path / "dst").symlink_to(elsewhere)  # the user named it: followed once, here
    with Folder.open(tmp_path / "dst") as folder:
        folder.write("f.txt", b"x")
    assert (elsewhere / "f.txt").read_bytes() == b"x"


def test_names_that_could_leave_the_folder_are_refused(tmp_path: Path) -> None:
    with Folder.open(tmp_path / "dst") as folder:
        for bad in ("../x", "a/../../x", "/etc/x", "a//b", "./x", "a/\x00"):
            with pytest.raises(StorageError, match="refusing unsafe name"):
                folder.write(bad, b"x")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst"]


def test_walk_and_remove_never_follow_links(tmp_path: Path, elsewhere: Path) -> None:
    (elsewhere / "keep.txt").write_bytes(b"theirs")
    dst = tmp_path / "dst"
    (dst / "d").mkdir(parents=True)
    (dst / "d" / "f").write_bytes(b"x")
    (dst / "link").symlink_to(elsewhere)
    with Folder.open(dst) as folder:
        assert list(folder.walk()) == [("d", True), ("d/f", False), ("link", False)]
        folder.remove("link")
        folder.remove("d/f")
        folder.remove("d")
    assert list(dst.iterdir()) == [] and (elsewhere / "keep.txt").read_bytes() == b"theirs"


def test_many_folders_through_a_bounded_set_of_descriptors(tmp_path: Path) -> None:
    before = _open_fds()
    with Folder.open(tmp_path / "dst") as folder:
        for i in range(3 * Folder._CACHE):
            folder.write(f"d{i % 150}/e{i}/f.txt", str(i))
        assert _open_fds() - before <= Folder._CACHE + 2
    assert (tmp_path / "dst" / "d7" / "e157" / "f.txt").read_text() == "157"
    assert _open_fds() == before


def _open_fds() -> int:
    return sum(1 for _ in Path("/proc/self/fd").iterdir())
