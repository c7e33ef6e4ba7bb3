"""Round trips against the real rclone binary, with a crypt remote over a local folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from seml.cli import main
from seml.crypt import obscure, reveal
from seml.crypt._content import BLOCK_DATA_SIZE

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("rclone") is None, reason="rclone binary not installed"),
]

PASSWORD = "interop password ✓"
PASSWORD2 = "interop salt"

TREE = {
    "empty.txt": b"",
    "one.txt": b"1",
    "exact64k.bin": bytes(range(256)) * (BLOCK_DATA_SIZE // 256),
    "exact128k.bin": bytes(range(255, -1, -1)) * (2 * BLOCK_DATA_SIZE // 256),
    "over64k.bin": b"\xab" * (BLOCK_DATA_SIZE + 1),
    # past several 16-chunk batches of the parallel file path
    "big/multi-batch.bin": bytes(range(251)) * (3 * 16 * BLOCK_DATA_SIZE // 251 + 7),
    "Ünïcödé ✓ Π.txt": "naïve café\n".encode(),
    "日本語/ファイル.csv": b"a,b\n1,2\n",
    "nested/deeper/deepest/leaf.md": b"# leaf\n",
    "nested/-v2001-02-03-040506-123 odd.txt": b"version-looking name",
    "nested/report-v2001-02-03-040506-123.txt": b"rclone version stamp stays clear",
}


@dataclass(frozen=True)
class Remote:
    name: str
    options: dict[str, str]
    flags: list[str]  # the same options as seml flags


REMOTES = [
    Remote("std", {}, []),
    Remote("b64", {"filename_encoding": "base64"}, ["--filename-encoding", "base64"]),
    Remote("obf", {"filename_encryption": "obfuscate"}, ["--filename-encryption", "obfuscate"]),
    Remote("off", {"filename_encryption": "off"}, ["--filename-encryption", "off"]),
    Remote(
        "nodirs",
        {"directory_name_encryption": "false"},
        ["--no-directory-name-encryption"],
    ),
]


def rclone(conf: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RCLONE_CONFIG": str(conf)}
    return subprocess.run(
        ["rclone", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def rclone_obscure(secret: str) -> str:
    done = subprocess.run(
        ["rclone", "obscure", "-"], input=secret, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.fixture
def setup(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Path, Path, Path, Remote]:
    remote: Remote = request.param
    store = tmp_path / "store"
    store.mkdir()
    lines = [
        f"[{remote.name}]",
        "type = crypt",
        f"remote = {store}",
        f"password = {rclone_obscure(PASSWORD)}",
        f"password2 = {rclone_obscure(PASSWORD2)}",
        *(f"{k} = {v}" for k, v in remote.options.items()),
    ]
    conf = tmp_path / "rclone.conf"
    conf.write_text("\n".join(lines) + "\n", encoding="utf-8")
    plain = tmp_path / "plain"
    for rel, data in TREE.items():
        (plain / rel).parent.mkdir(parents=True, exist_ok=True)
        (plain / rel).write_bytes(data)
    return conf, plain, store, remote


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("setup", REMOTES, ids=[r.name for r in REMOTES], indirect=True)
def test_seml_encrypted_tree_passes_rclone_check_and_cryptcheck(
    setup: tuple[Path, Path, Path, Remote],
) -> None:
    conf, plain, store, remote = setup
    args = ["crypt", "encrypt", str(plain), str(store), "-q"]
    assert main([*args, "--rclone-config", str(conf), "--remote", remote.name]) == 0
    for command in (["check", "--download"], ["cryptcheck"]):
        done = rclone(conf, *command, str(plain), f"{remote.name}:")
        assert done.returncode == 0, done.stderr
        assert f"{len(TREE)} matching files" in done.stderr
    listed = rclone(conf, "lsf", "-R", "--files-only", f"{remote.name}:")
    assert sorted(listed.stdout.splitlines()) == sorted(TREE)


@pytest.mark.parametrize("setup", REMOTES, ids=[r.name for r in REMOTES], indirect=True)
def test_rclone_encrypted_tree_decrypts_with_seml(
    setup: tuple[Path, Path, Path, Remote], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf, plain, store, remote = setup
    done = rclone(conf, "copy", str(plain), f"{remote.name}:")
    assert done.returncode == 0, done.stderr
    out = tmp_path / "out"
    # options from the environment + flags this time, not from the config file
    env_args = ["crypt", "decrypt", str(store), str(out), "-q", *remote.flags]
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", PASSWORD)
    monkeypatch.setenv("SEML_CRYPT_PASSWORD2", PASSWORD2)
    assert main(env_args) == 0
    assert files_under(out) == TREE
    # mtimes survive the trip as rclone copy sets them
    for rel in TREE:
        assert abs((out / rel).stat().st_mtime - (plain / rel).stat().st_mtime) < 1e-3


def test_obscure_interoperates_with_rclone() -> None:
    assert reveal(rclone_obscure(PASSWORD)) == PASSWORD
    # Obscured values are random base64url: some start with "-", which rclone must not take
    # for an option (one run in 64 did, before the "--").
    values = [obscure(PASSWORD) for _ in range(8)]
    values.append(next(v for v in iter(lambda: obscure(PASSWORD), None) if v.startswith("-")))
    for value in values:
        done = subprocess.run(
            ["rclone", "reveal", "--", value], capture_output=True, text=True, check=True
        )
        assert done.stdout.strip() == PASSWORD, value
