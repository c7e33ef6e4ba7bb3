"""The FUSE mount of a protected volume, mounted for real through /dev/fuse."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from seml.errors import StorageError
from seml.volume import FuseMount, Volume, fuse_available, inspect, private_workspace

KEY = bytes(range(32))
_why_not = fuse_available()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(_why_not is not None, reason=f"FUSE unavailable here: {_why_not}"),
]


@pytest.fixture
def volume(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path / "vol"
    files = {
        "small.txt": b"small\n",
        "data/big.bin": os.urandom(300_000),
        "data/keep.csv": b"a,b\n",
    }
    v = Volume.create(path, KEY, name="mounted")
    with private_workspace() as ws:
        for rel, content in files.items():
            (ws / rel).parent.mkdir(parents=True, exist_ok=True)
            (ws / rel).write_bytes(content)
        v.seal(ws)
    return path, files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def _unsealed(path: Path, version: int) -> dict[str, bytes]:
    v = Volume.open(path, KEY, name="mounted", expected_version=version)
    assert v.version == version
    v.verify()
    with private_workspace() as ws:
        v.unseal(ws)
        return _tree(ws)


def test_read_write_rename_delete_then_seal(
    volume: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, files = volume
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    expected_big = bytearray(files["data/big.bin"])
    with FuseMount(path, KEY, name="mounted", mountpoint=mnt) as mount:
        assert _tree(mnt) == files
        with open(mnt / "data/big.bin", "r+b") as f:  # copy-on-write across chunk borders
            f.seek(65_530)
            f.write(b"X" * 20)
            f.seek(299_990)
            f.write(b"tail-extends")
        expected_big[65_530:65_550] = b"X" * 20
        expected_big[299_990:] = b"tail-extends"
        assert (mnt / "data/big.bin").read_bytes() == bytes(expected_big)
        (mnt / "new").mkdir()
        (mnt / "new/out.txt").write_bytes(b"written inside")
        (mnt / "small.txt").rename(mnt / "new/renamed.txt")
        (mnt / "data/keep.csv").unlink()
        with open(mnt / "trunc.bin", "wb") as f:
            f.write(b"0123456789" * 10_000)
            f.truncate(70_000)
    assert mount.version == 2
    assert _unsealed(path, 2) == {
        "data/big.bin": bytes(expected_big),
        "new/out.txt": b"written inside",
        "new/renamed.txt": b"small\n",
        "trunc.bin": (b"0123456789" * 10_000)[:70_000],
    }
    assert not any(p.name.startswith(".scratch-") for p in path.iterdir())
    assert not os.path.ismount(mnt)


def test_discard_and_failing_body_keep_the_last_version(
    volume: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, files = volume
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with FuseMount(path, KEY, name="mounted", mountpoint=mnt) as mount:
        (mnt / "small.txt").write_bytes(b"dropped")
        assert mount.unmount(seal=False) == 1
    with (
        pytest.raises(RuntimeError, match="the command failed"),
        FuseMount(path, KEY, name="mounted", mountpoint=mnt),
    ):
        (mnt / "small.txt").write_bytes(b"dropped too")
        raise RuntimeError("the command failed")
    assert _unsealed(path, 1) == files


def test_tampered_object_reads_as_an_io_error(
    volume: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _ = volume
    v = Volume.open(path, KEY, name="mounted")
    entry = next(f for f in v.files() if f.path == "data/big.bin")
    obj = path / inspect(path).generation / entry.object
    data = bytearray(obj.read_bytes())
    data[100_000] ^= 1
    obj.write_bytes(bytes(data))
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with FuseMount(path, KEY, name="mounted", mountpoint=mnt) as mount:
        assert (mnt / "small.txt").read_bytes() == b"small\n"
        with pytest.raises(OSError) as caught:
            (mnt / "data/big.bin").read_bytes()
        assert caught.value.errno == errno.EIO
        mount.unmount(seal=False)


def test_wrong_key_fails_to_mount(volume: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    path, _ = volume
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    with (
        pytest.raises(StorageError, match="wrong volume key"),
        FuseMount(path, bytes(32), name="mounted", mountpoint=mnt),
    ):
        pass
    assert not os.path.ismount(mnt)


def test_kill_9_of_the_mount_keeps_the_last_version(
    volume: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, files = volume
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    mount = FuseMount(path, KEY, name="mounted", mountpoint=mnt).__enter__()
    (mnt / "small.txt").write_bytes(b"lost")
    assert mount._proc is not None
    os.kill(mount._proc.pid, signal.SIGKILL)
    with pytest.raises(StorageError, match="stays at its last sealed version"):
        mount.unmount()
    assert not os.path.ismount(mnt)
    assert any(p.name.startswith(".scratch-") for p in path.iterdir())
    assert _unsealed(path, 1) == files  # and the open removed the scratch leftovers
    assert not any(p.name.startswith(".scratch-") for p in path.iterdir())


def test_cli_mount_seals_on_unmount(volume: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    path, files = volume
    key_file = tmp_path / "key"
    key_file.write_bytes(KEY)
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    # Relative paths on purpose: the FUSE server must not depend on its working directory.
    argv = [sys.executable, "-m", "seml", "volume", "mount", "vol", "mnt"]
    argv += ["--key-file", "key", "--name", "mounted"]
    with subprocess.Popen(
        argv, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + 30
        while not os.path.ismount(mnt) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (mnt / "small.txt").read_bytes() == files["small.txt"]
        (mnt / "cli.txt").write_bytes(b"via the CLI")
        subprocess.run(["fusermount3", "-u", str(mnt)], check=True)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "sealed volume 'mounted' as version 2" in out
    assert _unsealed(path, 2) == {**files, "cli.txt": b"via the CLI"}
