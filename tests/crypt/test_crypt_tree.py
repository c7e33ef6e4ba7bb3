"""encrypt_tree / decrypt_tree: what `rclone copy` would do, and atomic outputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from seml.crypt import Cipher, CryptOptions, decrypt_tree, encrypt_tree
from seml.errors import IntegrityError, UsageError

CIPHER = Cipher.from_keys(bytes(32), bytes(range(32)), bytes(16))


def test_tree_round_trip_progress_and_returned_paths(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d" / "e").mkdir(parents=True)
    (src / "empty-dir").mkdir()
    (src / "a").write_bytes(b"A" * 70000)
    (src / "d" / "e" / "b").write_bytes(b"")
    (src / "link").symlink_to(src / "a")
    seen: list[int] = []
    written = encrypt_tree(src, tmp_path / "enc", CIPHER, progress=seen.append)
    assert written == [CIPHER.encrypt_name("a"), CIPHER.encrypt_name("d/e/b")]
    assert sum(seen) == 70000
    # symlinks are not followed, empty directories are not created (rclone copy defaults)
    assert not (tmp_path / "enc" / CIPHER.encrypt_name("link")).exists()
    assert not (tmp_path / "enc" / CIPHER.encrypt_dir_name("empty-dir")).exists()
    seen.clear()
    back = decrypt_tree(tmp_path / "enc", tmp_path / "out", CIPHER, progress=seen.append)
    assert back == ["a", "d/e/b"]
    assert sum(seen) == sum(CIPHER.encrypted_size(n) for n in (70000, 0))
    assert (tmp_path / "out" / "a").read_bytes() == b"A" * 70000
    assert (tmp_path / "out" / "d" / "e" / "b").read_bytes() == b""


def test_changed_source_is_re_encrypted(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "f").write_bytes(b"one")
    assert len(encrypt_tree(src, tmp_path / "enc", CIPHER)) == 1
    assert encrypt_tree(src, tmp_path / "enc", CIPHER) == []
    (src / "f").write_bytes(b"two!")
    assert len(encrypt_tree(src, tmp_path / "enc", CIPHER)) == 1
    decrypt_tree(tmp_path / "enc", tmp_path / "out", CIPHER)
    assert (tmp_path / "out" / "f").read_bytes() == b"two!"


def test_failed_file_stops_and_earlier_files_stay(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("a", "b", "c"):
        (src / name).write_bytes(name.encode() * 1000)
    opts = CryptOptions(filename_encryption="off")
    cipher = Cipher.from_keys(bytes(32), bytes(32), bytes(16), opts)
    encrypt_tree(src, tmp_path / "enc", cipher)
    victim = tmp_path / "enc" / "b.bin"
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    with pytest.raises(IntegrityError, match=r"b\.bin \[b\]: authentication failed at block 0"):
        decrypt_tree(tmp_path / "enc", tmp_path / "out", cipher)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]


def test_missing_source_and_bad_destination(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="does not exist"):
        encrypt_tree(tmp_path / "nope", tmp_path / "enc", CIPHER)
    (tmp_path / "src").mkdir()
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError, match="not a directory"):
        encrypt_tree(tmp_path / "src", tmp_path / "file", CIPHER)
    with pytest.raises(UsageError, match="inside it"):
        decrypt_tree(tmp_path / "src", tmp_path / "src", CIPHER)
