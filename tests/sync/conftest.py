"""Fixtures for sync tests: a crypt cipher, an edge-case source tree, an S3 bucket."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from _seaweedfs import SeaweedFS
from _sync_helpers import PASSWORD, PASSWORD2, PushedTree, Tree, make_tree
from seml.crypt import Cipher
from seml.store import FileStore
from seml.sync import push

_buckets = itertools.count()


@pytest.fixture
def cipher() -> Cipher:
    return Cipher(PASSWORD, PASSWORD2)


@pytest.fixture
def crypt_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEML_CRYPT_PASSWORD", PASSWORD)
    monkeypatch.setenv("SEML_CRYPT_PASSWORD2", PASSWORD2)


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    src = tmp_path / "src"
    return src, make_tree(src)


@pytest.fixture
def pushed(tmp_path: Path, tree: Tree, cipher: Cipher) -> PushedTree:
    src, files = tree
    remote = tmp_path / "remote"
    push(src, FileStore(remote), cipher, state_dir=tmp_path / "state")
    return remote, files


@pytest.fixture
def s3_bucket(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket on the session's SeaweedFS, with the environment pointing seml at it."""
    for k, v in seaweedfs.env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    name = f"sync-test-{next(_buckets)}"
    seaweedfs.create_bucket(name)
    yield name


@pytest.fixture(autouse=True)
def _private_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never touch the real ~/.local/state/seml from a test."""
    monkeypatch.setenv("SEML_STATE_DIR", str(tmp_path / "default-state"))
