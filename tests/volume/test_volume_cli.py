"""`seml volume` through the real entry point."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from seml.cli import main


@pytest.fixture
def volume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, list[str]]:
    key = tmp_path / "vol.key"
    assert main(["volume", "keygen", str(key)]) == 0
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    path = tmp_path / "vol"
    opts = ["--key-file", str(key), "--name", "results"]
    assert main(["volume", "create", str(path), *opts]) == 0
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "model.bin").write_bytes(b"\x00" * 100_000)
    (src / "sub" / "notes.txt").write_text("note\n")
    assert main(["volume", "seal", str(path), str(src), *opts]) == 0
    capsys.readouterr()
    return path, opts


def test_inspect_without_and_with_key(
    volume: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, opts = volume
    assert main(["volume", "inspect", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["version"], info["objects"], info["version_authenticated"]) == (1, 2, False)
    assert info["plaintext_bytes"] == 100_005
    assert main(["volume", "inspect", str(path), *opts]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is True
    assert [f["path"] for f in info["files"]] == ["model.bin", "sub/notes.txt"]


def test_verify_unseal_and_rollback_option(
    volume: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, opts = volume
    assert main(["volume", "verify", str(path), *opts, "--expected-version", "1"]) == 0
    assert "all verified" in capsys.readouterr().out
    assert main(["volume", "verify", str(path), *opts, "--expected-version", "2"]) == 3
    assert "rolled back: version 1 < 2" in capsys.readouterr().err
    out = tmp_path / "out"
    assert main(["volume", "unseal", str(path), str(out), *opts]) == 0
    assert (out / "sub" / "notes.txt").read_text() == "note\n"
    assert main(["volume", "unseal", str(path), str(out), *opts]) == 2  # not empty


def test_tampered_volume_fails_verify_and_inspect(
    volume: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, opts = volume
    generation = next(p for p in path.iterdir() if p.name.startswith("g"))
    victim = max((p for p in generation.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(victim.read_bytes()[:-1000])
    assert main(["volume", "verify", str(path), *opts]) == 3
    assert "file model.bin" in capsys.readouterr().err
    assert main(["volume", "inspect", str(path), *opts]) == 3
    assert json.loads(capsys.readouterr().out)["verified"] is False


def test_bad_keys_and_inputs(
    volume: tuple[Path, list[str]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = volume
    other = tmp_path / "other.key"
    assert main(["volume", "keygen", str(other)]) == 0
    assert main(["volume", "keygen", str(other)]) == 2  # never overwrites a key
    assert main(["volume", "verify", str(path), "--key-file", str(other), "--name", "results"]) == 3
    assert "wrong volume key" in capsys.readouterr().err
    junk = tmp_path / "junk.key"
    junk.write_text("not a key")
    assert main(["volume", "verify", str(path), "--key-file", str(junk), "--name", "results"]) == 2
    assert main(["volume", "inspect", str(path), "--key-file", str(other)]) == 2  # --name missing
    assert main(["volume", "inspect", str(tmp_path)]) == 2  # not a volume


def test_unseal_into_an_existing_open_folder_makes_it_private(
    volume: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, opts = volume
    out = tmp_path / "existing"
    out.mkdir()
    out.chmod(0o777)
    assert main(["volume", "unseal", str(path), str(out), *opts]) == 0
    assert (out / "sub" / "notes.txt").read_text() == "note\n"
    for folder in (out, out / "sub"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
