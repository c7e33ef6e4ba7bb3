"""The private workspace: private, wiped, and swept when a killed runtime left one behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from seml.volume import private_workspace, sweep_stale_workspaces


def test_workspace_is_private_and_wiped(tmp_path: Path) -> None:
    with private_workspace(shm=tmp_path) as ws:
        assert stat.S_IMODE(ws.stat().st_mode) == 0o700
        (ws / "secret.txt").write_text("s3cret")
        assert ws.parent == tmp_path
    assert not ws.exists()


def test_too_small_tmpfs_falls_back_to_disk(tmp_path: Path) -> None:
    with private_workspace(shm=tmp_path, size_hint=1 << 60) as ws:
        assert ws.parent != tmp_path


def test_workspace_of_a_dead_process_is_swept(tmp_path: Path) -> None:
    dead = tmp_path / "seml-ws-999999999-abcd"  # no such pid
    (dead / "data").mkdir(parents=True)
    (dead / "data" / "plain.csv").write_text("secret rows")
    alive = tmp_path / f"seml-ws-{os.getpid()}-efgh"
    alive.mkdir()
    other = tmp_path / "not-a-workspace"
    other.mkdir()
    assert sweep_stale_workspaces([tmp_path]) == [dead]
    assert not dead.exists()
    assert alive.exists() and other.exists()


def test_new_workspace_sweeps_stale_ones(tmp_path: Path) -> None:
    dead = tmp_path / "seml-ws-999999998-zz"
    dead.mkdir()
    with private_workspace(shm=tmp_path):
        assert not dead.exists()
