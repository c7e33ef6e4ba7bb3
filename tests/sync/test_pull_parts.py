"""pull of objects fetched as ranged parts in parallel (tiny parts, so small files split)."""

from __future__ import annotations

import io
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import BinaryIO

import pytest

import seml.sync._pull as pull_module
from _sync_helpers import Pushed, Tree, read_tree
from seml.crypt import Cipher
from seml.errors import IntegrityError, StorageError
from seml.store import FileStore, MemoryStore
from seml.sync import pull, push
from seml.sync._parts import part_count

BLOCK = 64 * 1024 + 16
HEADER = 32


@pytest.fixture(autouse=True)
def _one_block_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pull_module, "PART_BLOCKS", 1)


@pytest.fixture
def pushed(tmp_path: Path, tree: Tree, cipher: Cipher) -> tuple[MemoryStore, dict[str, bytes]]:
    src, files = tree
    big = bytes(range(256)) * (5 * 1024) + b"tail"  # 5 blocks and 4 bytes: 6 parts
    (src / "big.bin").write_bytes(big)
    (src / "big2.bin").write_bytes(big[::-1])
    files = {**files, "big.bin": big, "big2.bin": big[::-1]}
    store = MemoryStore()
    push(src, store, cipher, state_dir=tmp_path / "push-state")
    return store, files


def _refused(store: MemoryStore, tmp_path: Path, cipher: Cipher, match: str) -> None:
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=match):
        pull(store, out, cipher, state_dir=tmp_path / "state")
    assert not out.exists() or list(out.rglob("*")) == []


def test_part_count() -> None:
    assert part_count(HEADER, 1) == 1
    assert part_count(HEADER + BLOCK, 1) == 1
    assert part_count(HEADER + BLOCK + 17, 1) == 2
    assert part_count(HEADER + 5 * BLOCK + 20, 2) == 3


def test_round_trip_in_parts(pushed: Pushed, tmp_path: Path, cipher: Cipher) -> None:
    store, files = pushed
    out = tmp_path / "out"
    r = pull(store, out, cipher, state_dir=tmp_path / "state", transfers=3)
    assert read_tree(out) == files and r.verified


def test_round_trip_in_parts_on_file_store(
    tmp_path: Path, tree: Tree, cipher: Cipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_module, "LOCAL_PART_BLOCKS", 1)
    src, files = tree
    store = FileStore(tmp_path / "remote")
    push(src, store, cipher, state_dir=tmp_path / "s")
    pull(store, tmp_path / "out", cipher, state_dir=tmp_path / "s2", transfers=2)
    assert read_tree(tmp_path / "out") == files


def test_garbled_block_in_a_later_part(pushed: Pushed, tmp_path: Path, cipher: Cipher) -> None:
    store, _ = pushed
    obj = cipher.encrypt_name("big.bin")
    data = bytearray(store.objects[obj])
    data[HEADER + 3 * BLOCK + 100] ^= 1
    store.objects[obj] = bytes(data)
    _refused(store, tmp_path, cipher, r"big\.bin \(part at object byte .*authentication failed")


def test_parts_moved_within_the_object(pushed: Pushed, tmp_path: Path, cipher: Cipher) -> None:
    store, _ = pushed
    obj = cipher.encrypt_name("big.bin")
    data = store.objects[obj]
    one, two = data[HEADER : HEADER + BLOCK], data[HEADER + BLOCK : HEADER + 2 * BLOCK]
    store.objects[obj] = data[:HEADER] + two + one + data[HEADER + 2 * BLOCK :]
    _refused(store, tmp_path, cipher, r"big\.bin \(part at object byte 32,.*authentication")


def test_big_files_swapped(pushed: Pushed, tmp_path: Path, cipher: Cipher) -> None:
    store, _ = pushed
    a, b = cipher.encrypt_name("big.bin"), cipher.encrypt_name("big2.bin")
    store.objects[a], store.objects[b] = store.objects[b], store.objects[a]
    _refused(store, tmp_path, cipher, r"big2?\.bin: content does not match the manifest")


class _ShortRanges(MemoryStore):
    """A store whose ranged reads of one object come back a block short (a cut transfer)."""

    def __init__(self, base: MemoryStore, victim: str) -> None:
        super().__init__()
        self.objects = base.objects
        self._victim = victim

    def open(
        self, name: str, *, start: int = 0, length: int | None = None
    ) -> AbstractContextManager[BinaryIO]:
        data = self.objects[name]
        end = len(data) if length is None else start + length
        if name == self._victim and start > HEADER and end - start > BLOCK:
            end -= BLOCK
        return nullcontext(io.BytesIO(data[start:end]))


def test_short_range_is_refused(
    pushed: Pushed, tmp_path: Path, cipher: Cipher, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pull_module, "PART_BLOCKS", 2)
    store, _ = pushed
    short = _ShortRanges(store, cipher.encrypt_name("big.bin"))
    _refused(short, tmp_path, cipher, r"big\.bin: part at object byte .* decrypted to 65536 bytes")


def test_interrupted_part_leaves_nothing(pushed: Pushed, tmp_path: Path, cipher: Cipher) -> None:
    store, _ = pushed

    class Failing(MemoryStore):
        def open(
            self, name: str, *, start: int = 0, length: int | None = None
        ) -> AbstractContextManager[BinaryIO]:
            if start > HEADER + 2 * BLOCK:
                raise StorageError(f"{name}: connection reset")
            return super().open(name, start=start, length=length)

    failing = Failing()
    failing.objects = store.objects
    out = tmp_path / "out"
    with pytest.raises(StorageError, match="connection reset"):
        pull(failing, out, cipher, state_dir=tmp_path / "state")
    assert list(out.rglob("*")) == []
