"""`seml._fs`: files appear whole or not at all, flushed with their folder; secrets are 0600
from the first byte; nothing is left under a temporary name."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

import seml._fs as fs
from seml._fs import (
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
