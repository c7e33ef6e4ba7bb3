"""`Volume.unchanged_since_unseal`: true only for exactly what unseal left in the workspace."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from seml.volume import Volume

KEY = bytes(range(32))


def _volume(tmp_path: Path) -> Volume:
    source = tmp_path / "source"
    source.mkdir(parents=True)
    (source / "a.txt").write_text("abcd")
    (source / "sub").mkdir()
    (source / "sub" / "b.bin").write_bytes(b"\0" * 10)
    volume = Volume.create(tmp_path / "vol", KEY, name="v")
    volume.seal(source)
    return Volume.open(tmp_path / "vol", KEY, name="v")


def _unsealed(tmp_path: Path, name: str) -> tuple[Volume, Path]:
    volume = _volume(tmp_path / name)
    ws = tmp_path / name / "ws"
    volume.unseal(ws)
    return volume, ws


def test_untouched_workspace_is_unchanged(tmp_path: Path) -> None:
    volume, ws = _unsealed(tmp_path, "t")
    assert volume.unchanged_since_unseal(ws)
    (ws / "a.txt").read_text()  # reading is not a change
    assert volume.unchanged_since_unseal(ws)
    assert not volume.unchanged_since_unseal(tmp_path)  # not where it was unsealed


def test_every_kind_of_change_is_seen_at_once(tmp_path: Path) -> None:
    changes: dict[str, Callable[[Path], object]] = {
        "same-size": lambda ws: (ws / "a.txt").write_text("wxyz"),
        "truncate": lambda ws: os.truncate(ws / "a.txt", 0),
        "chmod": lambda ws: (ws / "a.txt").chmod(0o600),
        "add": lambda ws: (ws / "c.txt").write_text(""),
        "remove": lambda ws: (ws / "sub" / "b.bin").unlink(),
        "rename": lambda ws: (ws / "a.txt").rename(ws / "z.txt"),
        "symlink": lambda ws: (ws / "l").symlink_to("a.txt"),
    }
    for name, change in changes.items():
        volume, ws = _unsealed(tmp_path, name)
        change(ws)  # right after unseal: within the same clock tick if the machine is fast
        assert not volume.unchanged_since_unseal(ws), name


def test_never_unsealed_volume_is_not_unchanged(tmp_path: Path) -> None:
    volume = _volume(tmp_path)
    ws = tmp_path / "ws"
    ws.mkdir()
    assert not volume.unchanged_since_unseal(ws)
