"""The parallel seal and unseal paths: many files of awkward sizes, failures amid parallel work."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import pytest

from seml.crypt import Cipher
from seml.errors import IntegrityError
from seml.volume import Volume, inspect, private_workspace

KEY = bytes(range(32))
CHUNK = 64 * 1024
BATCH = 16 * CHUNK  # what the parallel file path hands to one task
SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, BATCH - 1, BATCH, BATCH + 1, 3 * BATCH + 5]


def _fill(root: Path) -> dict[str, bytes]:
    files = {}
    for i, size in enumerate(SIZES * 2):
        rel = f"d{i % 3}/f{i:02d}-{size}.bin"
        files[rel] = os.urandom(size)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(files[rel])
    return files


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def sealed(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    path = tmp_path / "vol"
    volume = Volume.create(path, KEY, name="many")
    work = tmp_path / "work"
    work.mkdir()
    files = _fill(work)
    assert volume.seal(work) == 1
    return path, files


def test_many_files_round_trip_with_digest_size_and_pinned_nonce(
    sealed: tuple[Path, dict[str, bytes]],
) -> None:
    path, files = sealed
    volume = Volume.open(path, KEY, name="many", expected_version=1)
    generation = path / inspect(path).generation
    for entry in volume.files():
        content = files[entry.path]
        assert entry.size == len(content)
        assert entry.sha256 == hashlib.sha256(content).hexdigest()
        obj = generation / entry.object
        assert obj.read_bytes()[8:32].hex() == entry.nonce
        assert obj.stat().st_size == Cipher.encrypted_size(len(content))
    assert len({e.nonce for e in volume.files()}) == len(files)
    volume.verify()
    with private_workspace() as ws:
        volume.unseal(ws, thorough=True)
        assert _tree(ws) == files


def test_a_tampered_file_among_many_leaves_nothing_behind(
    sealed: tuple[Path, dict[str, bytes]],
) -> None:
    path, _ = sealed
    volume = Volume.open(path, KEY, name="many")
    # The last file in seal order: the workers have unsealed others before they meet it.
    victim = max(volume.files(), key=lambda e: e.path)
    obj = path / inspect(path).generation / victim.object
    data = bytearray(obj.read_bytes())
    data[-1] ^= 1
    obj.write_bytes(bytes(data))
    with private_workspace() as ws:
        with pytest.raises(IntegrityError, match=victim.path):
            volume.unseal(ws)
        assert [p for p in ws.rglob("*") if p.is_file()] == []


def test_a_file_written_while_it_is_sealed_is_sealed_consistently(
    sealed: tuple[Path, dict[str, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path hashes and encrypts in separate reads; a write in between must not leave
    a manifest digest that disagrees with the object (the file is encrypted again)."""
    path, files = sealed
    volume = Volume.open(path, KEY, name="many")
    calls = []
    original = Cipher.encrypt_file

    with private_workspace() as ws:
        volume.unseal(ws)
        target = ws / "grows.bin"
        target.write_bytes(os.urandom(2 * BATCH))

        def writer_meanwhile(self: Cipher, src: Any, dst: Any, **kw: Any) -> int:
            calls.append(src.name)
            if Path(src.name) == target:
                with open(target, "ab") as f:
                    f.write(b"late write")
            return original(self, src, dst, **kw)

        monkeypatch.setattr(Cipher, "encrypt_file", writer_meanwhile)
        assert volume.seal(ws) == 2
        monkeypatch.undo()
        final = target.read_bytes()
    assert str(target) in calls
    assert final.endswith(b"late write")
    again = Volume.open(path, KEY, name="many", expected_version=2)
    again.verify()  # recomputes every SHA-256 against the manifest
    entry = next(e for e in again.files() if e.path == "grows.bin")
    assert (entry.size, entry.sha256) == (len(final), hashlib.sha256(final).hexdigest())
    with private_workspace() as ws:
        again.unseal(ws, thorough=True)
        assert _tree(ws) == {**files, "grows.bin": final}
