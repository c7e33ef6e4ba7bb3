"""Secrets a session puts in files land in the private workspace only: never through a link."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from seml.cas import ServiceConfig
from seml.errors import StorageError
from seml.runtime._run import _inject_files


def _config(files: dict[str, str]) -> ServiceConfig:
    return ServiceConfig(
        session="s",
        session_hash="0" * 64,
        service="svc",
        measurement="0" * 64,
        tee="simulated",
        simulated=True,
        weaknesses=[],
        command=["true"],
        environment={},
        files=files,
        volumes={},
        secrets=["k"],
    )


def test_session_files_never_go_through_a_link_in_the_workspace(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "etc").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="etc: is a symbolic link"):
        _inject_files(_config({"/etc/app/key": "secret"}), ws)
    assert list(elsewhere.iterdir()) == []

    (ws / "etc").unlink()
    victim = elsewhere / "victim"
    victim.write_text("theirs")
    (ws / "key").symlink_to(victim)  # a final name: replaced, not written through
    _inject_files(_config({"/key": "secret", "/etc/app/key": "secret2"}), ws)
    assert victim.read_text() == "theirs"
    assert (ws / "key").read_text() == "secret" and not (ws / "key").is_symlink()
    assert stat.S_IMODE((ws / "key").stat().st_mode) == 0o600
    assert stat.S_IMODE((ws / "etc" / "app").stat().st_mode) == 0o700
