"""push / pull / ls on file:// (real filesystem) and in memory: round trips, refusals, resume."""

from __future__ import annotations

import io
import logging
import shutil
from pathlib import Path
from typing import Any, BinaryIO

import pytest

import seml._fs as fs
from _sync_helpers import MARKER, PASSWORD, PASSWORD2, PushedTree, Tree, make_tree, read_tree
from seml.crypt import Cipher, CryptOptions
from seml.errors import IntegrityError, StorageError, UsageError
from seml.store import FileStore, MemoryStore, ObjectStore
from seml.sync import MANIFEST_NAME, ls, pull, push
from seml.sync import _pull as pull_module
from seml.sync._manifest import MARKER_NAME

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
    store = _FailingStore(ok=5)  # the push marker, then four files
    state = tmp_path / "state"
    with pytest.raises(StorageError, match="connection refused"):
        push(src, store, cipher, state_dir=state, transfers=1)
    assert cipher.encrypt_name(MANIFEST_NAME) not in store.objects
    with pytest.raises(StorageError, match=r"push started at .* was interrupted before its first"):
        pull(store, tmp_path / "early", cipher, state_dir=state)
    store.ok = 10**6
    r = push(src, store, cipher, state_dir=state, transfers=2)
    assert len(r.skipped) == 4 and len(r.uploaded) == len(files) - 4
    pull(store, tmp_path / "out", cipher, state_dir=state)
    assert read_tree(tmp_path / "out") == files


# -- tampering on the filesystem: each pull names the file and writes nothing ----------------


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


def test_same_version_with_another_manifest_is_a_fork(
    tmp_path: Path, tree: Tree, cipher: Cipher
) -> None:
    """Two machines push version 2 on top of version 1 (or the operator keeps one aside and
    serves it later): a machine that pulled one of them refuses the other."""
    src, _ = tree
    remote = tmp_path / "remote"
    store = FileStore(remote)
    push(src, store, cipher, state_dir=tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # both pushers saw version 1
    base = tmp_path / "base"
    shutil.copytree(remote, base)
    (src / "one.txt").write_bytes(b"alice's version 2")
    assert push(src, store, cipher, state_dir=tmp_path / "a").version == 2
    pull(store, tmp_path / "first", cipher, state_dir=tmp_path / "puller")
    alices = tmp_path / "alices"
    shutil.copytree(remote, alices)
    shutil.rmtree(remote)
    shutil.copytree(base, remote)
    (src / "one.txt").write_bytes(b"bob's version 2")
    assert push(src, store, cipher, state_dir=tmp_path / "b").version == 2
    out = tmp_path / "out"
    with pytest.raises(
        IntegrityError, match=r"manifest version 2 differs from the version 2 this machine"
    ):
        pull(store, out, cipher, state_dir=tmp_path / "puller")
    assert not out.exists()


def test_two_trees_under_one_password_cannot_be_swapped(
    tmp_path: Path, tree: Tree, cipher: Cipher
) -> None:
    src, files = tree
    a, b = tmp_path / "a", tmp_path / "b"
    push(src, FileStore(a), cipher, state_dir=tmp_path / "s")
    (src / "one.txt").write_bytes(b"the other tree")
    push(src, FileStore(b), cipher, state_dir=tmp_path / "s")
    shutil.rmtree(a)
    shutil.copytree(b, a)  # the operator serves b's tree as a
    out = tmp_path / "out"
    with pytest.raises(
        IntegrityError, match=rf"pushed to {b.as_uri()}/, not {a.as_uri()}/: the tree was moved"
    ):
        pull(FileStore(a), out, cipher, state_dir=tmp_path / "fresh")
    assert not out.exists()
    # A tree the user moved on purpose: accepted when they say where it was pushed.
    pull(FileStore(a), out, cipher, state_dir=tmp_path / "fresh", pushed_to=f"{b.as_uri()}/")
    assert read_tree(out) == dict(files, **{"one.txt": b"the other tree"})


def test_a_push_marker_must_authenticate(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher
) -> None:
    """A forged marker would make a pull overlook added files: it is refused."""
    remote, _ = pushed
    marker = _obj(remote, cipher, MARKER_NAME)
    shutil.copy(_obj(remote, cipher, "one.txt"), marker)  # encrypted right, but not a marker
    _refused(FileStore(remote), tmp_path, cipher, r"\.seml-push: push marker is not readable")


def test_manifest_tampered(pushed: PushedTree, tmp_path: Path, cipher: Cipher) -> None:
    remote, _ = pushed
    obj = _obj(remote, cipher, MANIFEST_NAME)
    data = bytearray(obj.read_bytes())
    data[-1] ^= 1
    obj.write_bytes(bytes(data))
    _refused(FileStore(remote), tmp_path, cipher, r"\.seml-manifest: .*(tampered|changed)")


def test_wrong_password_is_told_apart_from_an_empty_or_foreign_remote(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher
) -> None:
    remote, _ = pushed
    wrong = "object names do not decrypt with this key: a wrong password"
    _refused(FileStore(remote), tmp_path, Cipher("wrong"), wrong)
    _refused(FileStore(remote), tmp_path, Cipher(PASSWORD), wrong)  # password2 missing
    other_names = Cipher(PASSWORD, PASSWORD2, CryptOptions(filename_encoding="base64"))
    _refused(FileStore(remote), tmp_path, other_names, wrong)
    # With names in the clear the manifest is found, and its content does not decrypt.
    off = MemoryStore()
    push(tmp_path / "src", off, Cipher("pw", options=CryptOptions(filename_encryption="off")))
    with pytest.raises(IntegrityError, match="does not decrypt: wrong password or tampered"):
        pull(off, tmp_path / "o", Cipher("bad", options=CryptOptions(filename_encryption="off")))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StorageError, match="empty, nothing was pushed there"):
        pull(FileStore(empty), tmp_path / "o", cipher)
    with pytest.raises(StorageError, match="no such folder or bucket"):
        pull(FileStore(tmp_path / "missing"), tmp_path / "o", cipher)
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "notes.txt").write_text("not encrypted")
    _refused(FileStore(junk), tmp_path, cipher, wrong)


def test_no_manifest_pulls_rclone_tree_and_warns(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher, caplog: pytest.LogCaptureFixture
) -> None:
    remote, files = pushed
    _obj(remote, cipher, MANIFEST_NAME).unlink()
    _refused(
        FileStore(remote), tmp_path, cipher, "no seml manifest .* written by rclone .*--no-manifest"
    )
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


def test_pull_into_a_non_empty_folder_is_refused_unless_mirror(
    tmp_path: Path, cipher: Cipher
) -> None:
    src = tmp_path / "src"
    files = make_tree(src)
    store = MemoryStore()
    push(src, store, cipher, state_dir=tmp_path / "s")
    out = tmp_path / "out"
    (out / "stale" / "deep").mkdir(parents=True)
    (out / "stale" / "deep" / "old-model.skops").write_bytes(b"stale")
    (out / "mine.txt").write_bytes(b"local")
    (out / "one.txt").write_bytes(b"edited locally")
    before = read_tree(out)
    with pytest.raises(
        UsageError, match=r"not empty: a pull would overwrite 1 local files and keep 4 entries"
    ):
        pull(store, out, cipher, state_dir=tmp_path / "s")
    assert read_tree(out) == before
    plan = pull(store, out, cipher, state_dir=tmp_path / "s", mirror=True, dry_run=True)
    assert plan.dry_run and plan.replaced == ["one.txt"]
    assert plan.deleted == ["mine.txt", "stale", "stale/deep", "stale/deep/old-model.skops"]
    assert read_tree(out) == before  # a dry run writes nothing
    r = pull(store, out, cipher, state_dir=tmp_path / "s", mirror=True)
    assert read_tree(out) == files and not (out / "stale").exists()
    assert r.replaced == ["one.txt"] and "mine.txt" in r.deleted


def test_a_refused_mirror_pull_deletes_nothing(
    pushed: PushedTree, tmp_path: Path, cipher: Cipher
) -> None:
    remote, _ = pushed
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_bytes(b"local")
    obj = _obj(remote, cipher, "over64k.bin")
    obj.write_bytes(obj.read_bytes()[:-1] + b"!")
    with pytest.raises(IntegrityError, match=r"over64k\.bin: authentication failed"):
        pull(FileStore(remote), out, cipher, state_dir=tmp_path / "state", mirror=True)
    assert read_tree(out) == {"mine.txt": b"local"}


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
