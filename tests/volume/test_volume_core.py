"""Protected volumes: round trip, every tamper case, rollback, keys of other volumes."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

import pytest

from seml.errors import IntegrityError, StorageError, UsageError
from seml.volume import Volume, inspect, private_workspace

KEY = bytes(range(32))
OTHER_KEY = bytes(range(1, 33))
BIG = 200_000  # > 3 rclone chunks of 64 KiB


def _fill(root: Path) -> dict[str, bytes]:
    files = {
        "hello.txt": b"hello, volume\n",
        "empty": b"",
        "data/big.bin": os.urandom(BIG),
        "data/deep/nested/x.csv": b"a,b\n1,2\n",
        "run.sh": b"#!/bin/sh\necho hi\n",
    }
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    (root / "run.sh").chmod(0o755)
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    """A volume at version 1 holding `_fill`'s files."""
    path = tmp_path / "vol"
    volume = Volume.create(path, KEY, name="train-data")
    work = tmp_path / "work"
    work.mkdir()
    files = _fill(work)
    assert volume.seal(work) == 1
    return path, files


def _object(path: Path, rel: str) -> Path:
    volume = Volume.open(path, KEY, name="train-data")
    entry = next(f for f in volume.files() if f.path == rel)
    return path / inspect(path).generation / entry.object


def test_round_trip(sealed: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    path, files = sealed
    volume = Volume.open(path, KEY, name="train-data", expected_version=1)
    assert volume.version == 1
    assert sorted(f.path for f in volume.files()) == sorted(files)
    volume.verify()
    with private_workspace() as ws:
        volume.unseal(ws)
        assert _tree(ws) == files
        assert stat.S_IMODE((ws / "run.sh").stat().st_mode) == 0o755
    # names and contents are encrypted on disk
    on_disk = b"".join(p.read_bytes() for p in path.rglob("*") if p.is_file())
    assert b"hello, volume" not in on_disk
    assert not any("hello" in p.name or p.name == "data" for p in path.rglob("*"))


def test_versions_grow_and_changes_are_sealed(
    sealed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, files = sealed
    volume = Volume.open(path, KEY, name="train-data")
    with private_workspace() as ws:
        volume.unseal(ws)
        (ws / "hello.txt").write_bytes(b"changed")
        (ws / "data/deep/nested/x.csv").unlink()
        (ws / "new.txt").write_bytes(b"new")
        assert volume.seal(ws) == 2
    reopened = Volume.open(path, KEY, name="train-data", expected_version=2)
    with private_workspace() as ws:
        reopened.unseal(ws)
        expected = {**files, "hello.txt": b"changed", "new.txt": b"new"}
        del expected["data/deep/nested/x.csv"]
        assert _tree(ws) == expected
    assert inspect(path).leftovers == ()


def test_unchanged_files_reuse_their_objects(sealed: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = sealed
    before = _object(path, "data/big.bin").stat().st_ino
    volume = Volume.open(path, KEY, name="train-data")
    with private_workspace() as ws:
        volume.unseal(ws)
        (ws / "hello.txt").write_bytes(b"only this changed")
        volume.seal(ws)
    assert _object(path, "data/big.bin").stat().st_ino == before
    Volume.open(path, KEY, name="train-data").verify()


def test_a_rewrite_that_puts_size_and_mtime_back_is_sealed(
    sealed: tuple[Path, dict[str, bytes]],
) -> None:
    """Written in place right after the unseal (same inode, same size, mtime put back): only
    the change time tells, and the new content must be what gets sealed."""
    path, files = sealed
    volume = Volume.open(path, KEY, name="train-data")
    before = _object(path, "data/big.bin").stat().st_ino
    with private_workspace() as ws:
        volume.unseal(ws)
        target = ws / "data" / "big.bin"
        st = target.stat()
        changed = bytes([files["data/big.bin"][0] ^ 1]) + files["data/big.bin"][1:]
        with open(target, "r+b", buffering=0) as f:
            f.write(changed[:1])
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
        assert (target.stat().st_size, target.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
        volume.seal(ws)
    assert _object(path, "data/big.bin").stat().st_ino != before  # encrypted anew
    with private_workspace() as ws:
        Volume.open(path, KEY, name="train-data").unseal(ws, thorough=True)
        assert (ws / "data" / "big.bin").read_bytes() == changed


def _modify(obj: Path) -> None:
    data = bytearray(obj.read_bytes())
    data[-5] ^= 0x01
    obj.write_bytes(bytes(data))


def _truncate_mid_chunk(obj: Path) -> None:
    obj.write_bytes(obj.read_bytes()[:-100])


def _truncate_at_chunk_boundary(obj: Path) -> None:
    obj.write_bytes(obj.read_bytes()[: 32 + (64 * 1024 + 16)])  # header + exactly one chunk


@pytest.mark.parametrize(
    ("tamper", "rel", "reason"),
    [
        (_modify, "data/big.bin", "authentication failed"),
        (_modify, "hello.txt", "authentication failed"),
        (_truncate_mid_chunk, "data/big.bin", "data/big.bin"),
        (_truncate_at_chunk_boundary, "data/big.bin", "truncated"),
        (lambda obj: obj.unlink(), "data/deep/nested/x.csv", "missing (deleted"),
        (lambda obj: obj.write_bytes(b""), "hello.txt", "not the object"),
    ],
    ids=["modify", "modify-small", "truncate", "truncate-at-chunk", "delete", "empty"],
)
def test_tampered_file_is_refused_naming_it(
    sealed: tuple[Path, dict[str, bytes]], tamper: object, rel: str, reason: str
) -> None:
    path, _ = sealed
    tamper(_object(path, rel))  # type: ignore[operator]
    volume = Volume.open(path, KEY, name="train-data")
    with pytest.raises(IntegrityError) as caught:
        volume.verify()
    assert rel in str(caught.value)
    assert reason in str(caught.value)
    with private_workspace() as ws:
        with pytest.raises(IntegrityError, match=rel):
            volume.unseal(ws)
        left = [p for p in ws.rglob("*") if p.is_file()]
        assert left == [], "nothing may be left behind after a refused unseal"


def test_swapped_files_are_refused(sealed: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = sealed
    a, b = _object(path, "hello.txt"), _object(path, "run.sh")
    a_bytes, b_bytes = a.read_bytes(), b.read_bytes()
    a.write_bytes(b_bytes)
    b.write_bytes(a_bytes)
    with pytest.raises(IntegrityError, match=r"file hello\.txt .*swapped"):
        Volume.open(path, KEY, name="train-data").verify()


def test_old_copy_of_one_file_is_refused(
    sealed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _ = sealed
    old_object = tmp_path / "old-hello"
    shutil.copyfile(_object(path, "hello.txt"), old_object)
    volume = Volume.open(path, KEY, name="train-data")
    with private_workspace() as ws:
        volume.unseal(ws)
        (ws / "hello.txt").write_bytes(b"HELLO, VOLUME\n")  # same size, new content
        volume.seal(ws)
    shutil.copyfile(old_object, _object(path, "hello.txt"))
    reopened = Volume.open(path, KEY, name="train-data")
    with private_workspace() as ws, pytest.raises(IntegrityError, match=r"hello\.txt is not the"):
        reopened.unseal(ws)


def test_added_file_is_refused(sealed: tuple[Path, dict[str, bytes]], tmp_path: Path) -> None:
    path, _ = sealed
    # A genuine object of the same volume, under another valid encrypted name.
    other = tmp_path / "other"
    other.mkdir()
    (other / "hello.txt").write_bytes(b"x")
    (other / "intruder.txt").write_bytes(b"planted")
    shutil.copytree(path, tmp_path / "copy")
    copy = Volume.open(tmp_path / "copy", KEY, name="train-data")
    copy.seal(other)
    planted = next(f for f in copy.files() if f.path == "intruder.txt")
    generation = path / inspect(path).generation
    shutil.copyfile(
        tmp_path / "copy" / inspect(tmp_path / "copy").generation / planted.object,
        generation / planted.object,
    )
    with pytest.raises(IntegrityError, match=r"file intruder\.txt is not in the manifest"):
        Volume.open(path, KEY, name="train-data").verify()
    (generation / planted.object).unlink()
    (generation / "garbage").write_bytes(b"?")
    with pytest.raises(IntegrityError, match="not in the manifest"):
        Volume.open(path, KEY, name="train-data").verify()


def test_rollback_to_an_old_copy_is_refused(
    sealed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _ = sealed
    old_copy = tmp_path / "v1-copy"
    shutil.copytree(path, old_copy)
    volume = Volume.open(path, KEY, name="train-data", expected_version=1)
    with private_workspace() as ws:
        volume.unseal(ws)
        (ws / "hello.txt").write_bytes(b"v2")
        assert volume.seal(ws) == 2
    shutil.rmtree(path)
    shutil.copytree(old_copy, path)
    with pytest.raises(
        IntegrityError,
        match="volume train-data rolled back: version 1 < 2 known to the attestation service",
    ):
        Volume.open(path, KEY, name="train-data", expected_version=2)
    assert Volume.open(path, KEY, name="train-data", expected_version=1).version == 1


def test_edited_header_is_refused(sealed: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = sealed
    header = path / "VOLUME"
    header.write_text(header.read_text().replace('"version": 1', '"version": 7'))
    with pytest.raises(IntegrityError, match="does not authenticate"):
        Volume.open(path, KEY, name="train-data")
    header.write_text("{not json")
    with pytest.raises(IntegrityError, match="unreadable volume header"):
        Volume.open(path, KEY, name="train-data")


def test_another_volumes_key_or_name_cannot_open_it(
    sealed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _ = sealed
    with pytest.raises(IntegrityError, match="wrong volume key"):
        Volume.open(path, OTHER_KEY, name="train-data")
    with pytest.raises(IntegrityError, match="is volume 'train-data', not 'models'"):
        Volume.open(path, KEY, name="models")
    other = Volume.create(tmp_path / "other", OTHER_KEY, name="models")
    with pytest.raises(IntegrityError, match="wrong volume key"):
        Volume.open(other.path, KEY, name="models")
    with pytest.raises(UsageError, match="32 bytes"):
        Volume.open(path, b"short", name="train-data")


def test_stale_handle_cannot_overwrite_a_newer_version(
    sealed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, _ = sealed
    first = Volume.open(path, KEY, name="train-data")
    second = Volume.open(path, KEY, name="train-data")
    work = tmp_path / "w"
    work.mkdir()
    (work / "f").write_bytes(b"1")
    assert first.seal(work) == 2
    with pytest.raises(IntegrityError, match="changed since it was opened"):
        second.seal(work)


def test_seal_refuses_symlinks(tmp_path: Path) -> None:
    volume = Volume.create(tmp_path / "vol", KEY, name="v")
    work = tmp_path / "w"
    work.mkdir()
    (work / "link").symlink_to("/etc/passwd")
    with pytest.raises(UsageError, match="cannot seal link: only regular files"):
        volume.seal(work)
    assert Volume.open(tmp_path / "vol", KEY, name="v").version == 0


def test_create_refuses_non_empty_dir_and_open_refuses_non_volume(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    with pytest.raises(UsageError, match="not empty"):
        Volume.create(tmp_path, KEY, name="v")
    with pytest.raises(UsageError, match="no protected volume"):
        Volume.open(tmp_path, KEY, name="v")
    with pytest.raises(UsageError, match="volume name"):
        Volume.create(tmp_path / "new", KEY, name="")


def test_inspect_without_key(sealed: tuple[Path, dict[str, bytes]]) -> None:
    path, files = sealed
    info = inspect(path)
    assert info.version == 1
    assert len(info.objects) == len(files)
    assert info.plaintext_bytes == sum(len(c) for c in files.values())
    assert info.to_json_dict()["version_authenticated"] is False


def test_open_removes_leftovers_of_an_interrupted_seal(
    sealed: tuple[Path, dict[str, bytes]],
) -> None:
    path, _ = sealed
    (path / ".staging-0badf00d").mkdir()
    (path / ".staging-0badf00d" / "obj").write_bytes(b"x")
    (path / "g000000000002-deadbeef").mkdir()
    assert inspect(path).leftovers == (".staging-0badf00d", "g000000000002-deadbeef")
    Volume.open(path, KEY, name="train-data").verify()
    assert inspect(path).leftovers == ()


def test_private_workspace_is_private_and_wiped(tmp_path: Path) -> None:
    with private_workspace() as ws:
        assert stat.S_IMODE(ws.stat().st_mode) == 0o700
        (ws / "secret").write_bytes(b"s")
    assert not ws.exists()
    with (
        pytest.raises(RuntimeError, match="command failed"),
        private_workspace(shm=tmp_path / "no-shm") as ws2,
    ):
        assert not ws2.is_relative_to(tmp_path)
        (ws2 / "secret").write_bytes(b"s")
        raise RuntimeError("command failed")
    assert not ws2.exists()


def test_missing_generation_or_manifest_is_refused(sealed: tuple[Path, dict[str, bytes]]) -> None:
    path, _ = sealed
    generation = path / inspect(path).generation
    (generation / "MANIFEST").unlink()
    with pytest.raises(IntegrityError, match="current generation is missing"):
        Volume.open(path, KEY, name="train-data")
    shutil.rmtree(generation)
    with pytest.raises(IntegrityError, match="current generation is missing"):
        Volume.open(path, KEY, name="train-data")


def test_workspace_falls_back_to_disk_when_tmpfs_is_too_small() -> None:
    with private_workspace(size_hint=1 << 60) as ws:
        assert not ws.is_relative_to("/dev/shm")
        assert stat.S_IMODE(ws.stat().st_mode) == 0o700
        (ws / "f").write_bytes(b"plain")
    assert not ws.exists()


# Each refusal names the volume (by name, or by its folder when its header is what broke).
_NAMES_THE_VOLUME = r"volume ('train-data'|.*/vol\b)"


def test_any_flipped_byte_on_disk_is_refused(sealed: tuple[Path, dict[str, bytes]]) -> None:
    """A spread of single-byte changes over every file of the volume (header, manifest,
    objects): each must make open, verify or unseal fail with IntegrityError."""
    path, _ = sealed
    targets = sorted(p for p in path.rglob("*") if p.is_file() and p.name != ".lock")
    for target in targets:
        original = target.read_bytes()
        step = max(1, len(original) // 4)
        for position in sorted(
            {0, len(original) // 2, len(original) - 1, *range(3, len(original), step)}
        ):
            changed = bytearray(original)
            changed[position] ^= 0x04
            target.write_bytes(bytes(changed))
            with pytest.raises(IntegrityError, match=_NAMES_THE_VOLUME):
                volume = Volume.open(path, KEY, name="train-data")
                volume.verify()
            with pytest.raises(IntegrityError, match=_NAMES_THE_VOLUME):
                volume = Volume.open(path, KEY, name="train-data")
                with private_workspace() as ws:
                    volume.unseal(ws)
            target.write_bytes(original)
    Volume.open(path, KEY, name="train-data").verify()


def test_unseal_never_writes_through_a_planted_link(
    sealed: tuple[Path, dict[str, bytes]], tmp_path: Path
) -> None:
    path, files = sealed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim"
    victim.write_bytes(b"theirs")
    volume = Volume.open(path, KEY, name="train-data")
    ws = tmp_path / "ws"
    (ws / "data").mkdir(parents=True)
    (ws / "data" / "deep").symlink_to(elsewhere)
    with pytest.raises(StorageError, match="data/deep: is a symbolic link"):
        volume.unseal(ws)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim"]
    (ws / "data" / "deep").unlink()
    (ws / "hello.txt").symlink_to(victim)  # a final name: replaced, not written through
    volume.unseal(ws)
    assert _tree(ws) == files and victim.read_bytes() == b"theirs"
    assert stat.S_IMODE(ws.stat().st_mode) == 0o700
