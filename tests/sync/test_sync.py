"""push / pull / ls on file:// (real filesystem) and in memory: round trips, refusals, resume."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import seml._fs as fs
from _sync_helpers import MARKER, PushedTree, Tree, make_tree, read_tree
from seml.crypt import Cipher, CryptOptions
from seml.errors import IntegrityError, StorageError, UsageError
from seml.store import FileStore, MemoryStore, ObjectStore
from seml.sync import MANIFEST_NAME, ls, pull, push
from seml.sync import _pull as pull_module

BLOCK = 64 * 1024 + 16  # one encrypted chunk
HEADER = 32


def test_round_trip_file_store(tmp_path: Path, tree: Tree, cipher: Cipher) -> None:
    src, files = tree
    store = FileStore(tmp_path / "remote")
    r = push(src, store, cipher, state_dir=tmp_path / "state", transfers=3)
    assert sorted(r.uploaded) == sorted(files) and r.version == 1
    out = tmp_path / "out"
    p = pull(store, out, cipher, state_dir=tmp_path / "state2")
    assert read_tree(out) == files
    assert p.version == 1 and sorted(p.files) == sorted(files)
    # Modification times travel through the manifest.
    assert (out / "one.txt").stat().st_mtime == pytest.approx((src / "one.txt").stat().st_mtime)


def test_pull_flushes_every_file_before_naming_it_then_its_folders(
    tmp_path: Path, tree: Tree, cipher: Cipher, fsyncs: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    src, files = tree
    store = FileStore(tmp_path / "remote")
    push(src, store, cipher, state_dir=tmp_path / "state")
    out = tmp_path / "out"
    flushed: list[list[str]] = []  # what had a final name when the data was flushed

    def sync_filesystem(folder: Path) -> None:
        flushed.append([rel for rel in files if (out / rel).exists()])
        real(folder)

    real = fs.sync_filesystem
    monkeypatch.setattr(pull_module, "sync_filesystem", sync_filesystem)
    fsyncs.clear()
    pull(store, out, cipher, state_dir=tmp_path / "state2")
    assert read_tree(out) == files
    assert flushed == [[]]  # once, before any file got its final name
    assert fsyncs.count("dir") >= len({(out / rel).parent for rel in files})


def test_no_plaintext_at_rest(tmp_path: Path, tree: Tree, cipher: Cipher) -> None:
    src, files = tree
    remote = tmp_path / "remote"
    push(src, FileStore(remote), cipher, state_dir=tmp_path / "state")
    names = [p.relative_to(remote).as_posix() for p in remote.rglob("*")]
    for rel in files:
        for part in rel.split("/"):
            assert not any(part in n for n in names), part
    for p in remote.rglob("*"):
        if p.is_file():
            assert MARKER[:8] not in p.read_bytes()


def test_single_file_push(tmp_path: Path, tree: Tree, cipher: Cipher) -> None:
    src, files = tree
    store = MemoryStore()
    push(src / "exact64k.bin", store, cipher, state_dir=tmp_path / "s")
    pull(store, tmp_path / "out", cipher, state_dir=tmp_path / "s")
    assert read_tree(tmp_path / "out") == {"exact64k.bin": files["exact64k.bin"]}


def test_second_push_uploads_only_changes_and_deletes_removed(
    tmp_path: Path, tree: Tree, cipher: Cipher
) -> None:
    src, files = tree
    store = MemoryStore()
    state = tmp_path / "state"
    push(src, store, cipher, state_dir=state)
    (src / "one.txt").write_bytes(b"changed")
    (src / "twins" / "b.txt").unlink()
    r = push(src, store, cipher, state_dir=state)
    assert r.uploaded == ["one.txt"] and r.deleted == ["twins/b.txt"] and r.version == 2
    assert len(r.skipped) == len(files) - 2
    out = tmp_path / "out"
    pull(store, out, cipher, state_dir=state)
    expected = dict(files, **{"one.txt": b"changed"})
    del expected["twins/b.txt"]
    assert read_tree(out) == expected
    assert {e.path for e in ls(store, cipher).entries} == set(expected)


class _FailingStore(MemoryStore):
    """Fails every upload after the first `ok` ones, like a server that went away."""

    def __init__(self, ok: int) -> None:
        super().__init__()
        self.ok = ok
        self.puts = 0

    def put(self, name: str, src: BinaryIO, *, mtime: float | None = None) -> int:
        self.puts += 1
        if self.puts > self.ok:
            raise StorageError(f"memory://{name}: cannot upload: connection refused")
        return super().put(name, src, mtime=mtime)


def test_interrupted_push_resumes_without_reuploading(
    tmp_path: Path, tree: Tree, cipher: Cipher
) -> None:
    src, files = tree
    store = _FailingStore(ok=4)
    state = tmp_path / "state"
    with pytest.raises(StorageError, match="connection refused"):
        push(src, store, cipher, state_dir=state, transfers=1)
    assert cipher.encrypt_name(MANIFEST_NAME) not in store.objects
    with pytest.raises(IntegrityError, match="no seml manifest"):
        pull(store, tmp_path / "early", cipher, state_dir=state)
    store.ok = 10**6
    r = push(src, store, cipher, state_dir=state, transfers=2)
    assert len(r.skipped) == 4 and len(r.uploaded) == len(files) - 4
    pull(store, tmp_path / "out", cipher, state_dir=state)
    assert read_tree(tmp_path / "out") == files


# -- tampering on the filesystem: each pull names the file and writes nothing ----------------


@pytest.fixture
def pushed(tmp_path: Path, tree: Tree, cipher: Cipher) -> PushedTree:
    src, files = tree
    remote = tmp_path / "remote"
    push(src, FileStore(remote), cipher, state_dir=tmp_path / "state")
    return remote, files


def _obj(remote: Path, cipher: Cipher, rel: str) -> Path:
    return remote / cipher.encrypt_name(rel)


def _refused(store: ObjectStore, tmp_path: Path, cipher: Cipher, match: str, **kw: Any) -> None:
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=match):
        pull(store, out, cipher, state_dir=tmp_path / "state", **kw)
    assert not out.exists() or list(out.rglob("*")) == []


def test_truncated_at_chunk_boundary(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    obj = _obj(remote, cipher, "over64k.bin")
    with open(obj, "r+b") as f:
        f.truncate(HEADER + BLOCK)  # what rclone alone decrypts happily as a 64 KiB file
    out = io.BytesIO()
    with open(obj, "rb") as f:
        assert cipher.decrypt_stream(f, out, name="x") == 64 * 1024
    _refused(FileStore(remote), tmp_path, cipher, r"over64k\.bin: stored object is .*truncated")


def test_two_files_swapped(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    a, b = _obj(remote, cipher, "twins/a.txt"), _obj(remote, cipher, "twins/b.txt")
    tmp = a.with_name("x")
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    _refused(FileStore(remote), tmp_path, cipher, r"twins/a\.txt: content does not match")


def test_file_deleted(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    _obj(remote, cipher, "données/ñandú €.txt").unlink()
    _refused(FileStore(remote), tmp_path, cipher, r"données/ñandú €\.txt: missing .*deleted")


def test_file_added(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    extra = _obj(remote, cipher, "sub dir/extra.txt")
    extra.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(_obj(remote, cipher, "one.txt"), extra)
    _refused(FileStore(remote), tmp_path, cipher, r"sub dir/extra\.txt: not in the manifest")


def test_content_garbled(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    obj = _obj(remote, cipher, "exact128k.bin")
    data = bytearray(obj.read_bytes())
    data[HEADER + BLOCK + 5] ^= 1
    obj.write_bytes(bytes(data))
    _refused(
        FileStore(remote), tmp_path, cipher, r"exact128k\.bin: authentication failed at block 1"
    )


def test_manifest_rolled_back(tmp_path: Path, tree: Tree, cipher: Cipher) -> None:
    src, _ = tree
    remote = tmp_path / "remote"
    store = FileStore(remote)
    state = tmp_path / "state"
    push(src, store, cipher, state_dir=state)
    old = tmp_path / "old-remote"
    shutil.copytree(remote, old)  # a consistent snapshot of version 1
    (src / "one.txt").write_bytes(b"v2")
    push(src, store, cipher, state_dir=state)
    pull(store, tmp_path / "first", cipher, state_dir=tmp_path / "puller")
    shutil.rmtree(remote)
    shutil.copytree(old, remote)  # the operator restores the old, self-consistent tree
    _refused_with = tmp_path / "puller"
    out = tmp_path / "out"
    with pytest.raises(IntegrityError, match=r"version 1 is older than version 2"):
        pull(store, out, cipher, state_dir=_refused_with)
    assert not out.exists()
    # A fresh machine can pin the version it expects instead.
    with pytest.raises(IntegrityError, match=r"version 1 is older than --min-version 2"):
        pull(store, out, cipher, state_dir=tmp_path / "fresh", min_version=2)
    # And the pusher refuses to build on a rolled-back remote.
    with pytest.raises(IntegrityError, match="rolled back; refusing to push"):
        push(src, store, cipher, state_dir=state)


def test_manifest_tampered(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    obj = _obj(remote, cipher, MANIFEST_NAME)
    data = bytearray(obj.read_bytes())
    data[-1] ^= 1
    obj.write_bytes(bytes(data))
    _refused(FileStore(remote), tmp_path, cipher, r"\.seml-manifest: .*(tampered|changed)")


def test_wrong_password_is_refused(pushed: PushedTree, tmp_path: Path) -> None:
    remote, _ = pushed
    _refused(FileStore(remote), tmp_path, Cipher("wrong"), "no seml manifest")


def test_no_manifest_pulls_rclone_tree_and_warns(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher, caplog: pytest.LogCaptureFixture
) -> None:
    remote, files = pushed
    _obj(remote, cipher, MANIFEST_NAME).unlink()
    _refused(FileStore(remote), tmp_path, cipher, "no seml manifest .* --no-manifest")
    with caplog.at_level(logging.WARNING, logger="seml.sync"):
        r = pull(FileStore(remote), tmp_path / "out", cipher, no_manifest=True)
    assert "WITHOUT a manifest" in caplog.text and not r.verified
    assert read_tree(tmp_path / "out") == files


def test_reserved_name_and_bad_source(tmp_path: Path, cipher: Cipher) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / MANIFEST_NAME).write_bytes(b"x")
    with pytest.raises(UsageError, match="reserved"):
        push(tmp_path / "src", MemoryStore(), cipher, state_dir=tmp_path)
    with pytest.raises(UsageError, match="cannot read source"):
        push(tmp_path / "missing", MemoryStore(), cipher, state_dir=tmp_path)


def test_pull_into_existing_tree_replaces_only_pulled_files(tmp_path: Path, cipher: Cipher) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    store = MemoryStore()
    push(src, store, cipher, state_dir=tmp_path / "s")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_bytes(b"keep")
    (out / "one.txt").write_bytes(b"old")
    pull(store, out, cipher, state_dir=tmp_path / "s")
    assert read_tree(out) == dict(files, **{"mine.txt": b"keep"})


@pytest.mark.parametrize(
    "options",
    [
        CryptOptions(filename_encryption="off"),
        CryptOptions(filename_encryption="obfuscate"),
        CryptOptions(filename_encoding="base64", directory_name_encryption=False),
    ],
    ids=["off", "obfuscate", "base64-plain-dirs"],
)
def test_round_trip_with_every_name_option(
    tmp_path: Path, tree: Tree, options: CryptOptions
) -> None:
    src, files = tree
    cipher = Cipher("pw", "salt", options)
    store = MemoryStore()
    push(src, store, cipher, state_dir=tmp_path / "s")
    pull(store, tmp_path / "out", cipher, state_dir=tmp_path / "s")
    assert read_tree(tmp_path / "out") == files
    # ... and a swap is still caught in every mode
    with pytest.raises(IntegrityError, match=r"twins/[ab]\.txt: content does not match"):
        a, b = cipher.encrypt_name("twins/a.txt"), cipher.encrypt_name("twins/b.txt")
        store.objects[a], store.objects[b] = store.objects[b], store.objects[a]
        pull(store, tmp_path / "out2", cipher, state_dir=tmp_path / "s")
