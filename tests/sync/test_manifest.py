"""The manifest format on its own: seal, open, and what opening refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from seml.crypt import Cipher
from seml.errors import IntegrityError
from seml.sync import FileEntry, Manifest, ManifestKeys
from seml.sync._manifest import open_manifest, seal_manifest


def _manifest(keys: ManifestKeys, version: int = 3) -> Manifest:
    files = (
        FileEntry("a.txt", 5, "a" * 64, "obj-a", 53, 1.5),
        FileEntry("d/b.bin", 0, "b" * 64, "obj-d/obj-b", 32, 0.0),
    )
    return Manifest(version, keys.key_id, "2026-01-01T00:00:00+00:00", files)


def test_round_trip(cipher: Cipher) -> None:
    keys = ManifestKeys.from_cipher(cipher)
    m = _manifest(keys)
    assert open_manifest(seal_manifest(m, keys), keys, where="x") == m


def test_keys_depend_on_the_secret_and_never_show(cipher: Cipher) -> None:
    keys = ManifestKeys.from_cipher(cipher)
    assert keys == ManifestKeys.from_cipher(Cipher("sync-test-password", "sync-test-salt"))
    other = ManifestKeys.from_cipher(Cipher("another", "sync-test-salt"))
    assert other.mac_key != keys.mac_key and other.key_id != keys.key_id
    assert keys.mac_key.hex() not in repr(keys)


@pytest.mark.parametrize(
    "edit",
    [
        lambda b: b["files"][0].__setitem__("size", 6),
        lambda b: b.__setitem__("version", 4),
        lambda b: b["files"].pop(),
        lambda b: b["files"][0].__setitem__("sha256", "c" * 64),
    ],
    ids=["size", "version", "dropped-entry", "digest"],
)
def test_any_edit_fails_authentication(
    cipher: Cipher, edit: Callable[[dict[str, Any]], object]
) -> None:
    keys = ManifestKeys.from_cipher(cipher)
    outer = json.loads(seal_manifest(_manifest(keys), keys))
    edit(outer["manifest"])
    with pytest.raises(IntegrityError, match="where: manifest authentication failed"):
        open_manifest(json.dumps(outer).encode(), keys, where="where")


def test_another_key_is_refused(cipher: Cipher) -> None:
    keys = ManifestKeys.from_cipher(cipher)
    other = ManifestKeys.from_cipher(Cipher("another"))
    with pytest.raises(IntegrityError, match="authentication failed"):
        open_manifest(seal_manifest(_manifest(keys), keys), other, where="m")


def test_garbage_is_refused(cipher: Cipher) -> None:
    keys = ManifestKeys.from_cipher(cipher)
    with pytest.raises(IntegrityError, match="m: manifest is not readable"):
        open_manifest(b"not json", keys, where="m")
