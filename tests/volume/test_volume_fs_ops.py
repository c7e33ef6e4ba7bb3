"""The FUSE operations of a mounted volume, called directly (no kernel involved)."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from seml.volume import Volume, private_workspace
from seml.volume._fuse import VolumeFS

KEY = bytes(range(32))


@pytest.fixture
def fs(tmp_path: Path) -> Iterator[VolumeFS]:
    volume = Volume.create(tmp_path / "vol", KEY, name="ops")
    with private_workspace() as ws:
        (ws / "d").mkdir()
        (ws / "d/a.txt").write_bytes(b"alpha")
        (ws / "top.bin").write_bytes(os.urandom(70_000))
        volume.seal(ws)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    mounted = VolumeFS(
        Volume.open(tmp_path / "vol", KEY, name="ops"), scratch, on_ready=lambda: None
    )
    yield mounted
    mounted.close()


def _errno(call: object, *args: object) -> int:
    with pytest.raises(OSError) as caught:
        call(*args)  # type: ignore[operator]
    assert caught.value.errno is not None
    return caught.value.errno


def test_tree_and_attributes(fs: VolumeFS) -> None:
    assert sorted(fs.readdir("/", 0)) == [".", "..", "d", "top.bin"]
    assert fs.readdir("/d", 0) == [".", "..", "a.txt"]
    assert fs.getattr("/top.bin")["st_size"] == 70_000
    assert fs.read("/d/a.txt", 100, 1, 0) == b"lpha"
    assert _errno(fs.getattr, "/missing") == errno.ENOENT


def test_namespace_errors(fs: VolumeFS) -> None:
    assert _errno(fs.mkdir, "/d", 0o755) == errno.EEXIST
    assert _errno(fs.mkdir, "/no/such", 0o755) == errno.ENOENT
    assert _errno(fs.create, "/top.bin/x", 0o644) == errno.ENOTDIR
    assert _errno(fs.rmdir, "/d") == errno.ENOTEMPTY
    assert _errno(fs.rmdir, "/top.bin") == errno.ENOTDIR
    assert _errno(fs.unlink, "/d") == errno.EISDIR
    assert _errno(fs.open, "/d", os.O_RDONLY) == errno.EISDIR
    assert _errno(fs.rename, "/d", "/d/inside") == errno.EINVAL
    fs.mkdir("/e", 0o700)
    assert _errno(fs.rename, "/e", "/top.bin") == errno.ENOTDIR
    assert _errno(fs.rename, "/top.bin", "/d") == errno.EISDIR


def test_rename_directory_moves_its_files_and_seals_without_reencrypting(fs: VolumeFS) -> None:
    fs.rename("/d", "/moved")
    assert fs.read("/moved/a.txt", 10, 0, 0) == b"alpha"
    fs.create("/moved/b.txt", 0o600)
    fs.write("/moved/b.txt", b"beta", 0, 0)
    fs.chmod("/moved/b.txt", 0o640)
    sources = {s.path: s for s in fs.sources()}
    assert set(sources) == {"moved/a.txt", "moved/b.txt", "top.bin"}
    assert sources["moved/a.txt"].same_as is not None  # the sealed object, reused
    assert sources["moved/b.txt"].same_as is None and sources["moved/b.txt"].mode == 0o640
