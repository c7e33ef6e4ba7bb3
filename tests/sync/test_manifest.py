"""The manifest format on its own: seal, open, and what opening refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from seml.crypt import Cipher
from seml.errors import IntegrityError
from seml.sync import FileEntry, Manifest, ManifestKeys
from seml.sync._manifest import (
    PushMarker,
    open_manifest,
    open_marker,
    seal_manifest,
    seal_marker,
)


def _manifest(keys: ManifestKeys, version: int = 3) -> Manifest:
    files = (
        FileEntry("a.txt", 5, "a" * 64, "obj-a", 53, 1.5, staged="obj-staging/a"),
        FileEntry("d/b.bin", 0, "b" * 64, "obj-d/obj-b", 32, 0.0),
    )
    return Manifest(version, keys.key_id, "2026-01-01T00:00:00+00:00", files, "s3://b/p/")


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
        lambda b: b.__setitem__("remote", "s3://b/other/"),
        lambda b: b["files"][0].pop("staged"),
    ],
    ids=["size", "version", "dropped-entry", "digest", "remote", "staged"],
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


def test_a_manifest_of_the_first_format_is_refused_plainly(cipher: Cipher) -> None:
    """Format 1 did not name its remote, so it could be swapped in from another tree."""
    keys = ManifestKeys.from_cipher(cipher)
    outer = json.loads(seal_manifest(_manifest(keys), keys))
    body = outer["manifest"]
    body["format"] = "seml-sync-manifest/1"
    del body["remote"]
    resealed = _reseal(body, keys)
    with pytest.raises(IntegrityError, match=r"written by an older seml .* push the tree again"):
        open_manifest(resealed, keys, where="m")


def test_a_manifest_is_not_a_push_marker_nor_the_other_way_round(cipher: Cipher) -> None:
    keys = ManifestKeys.from_cipher(cipher)
    marker = PushMarker("0123", keys.key_id, "s3://b/p/", 3, "2026-01-01T00:00:00+00:00")
    assert open_marker(seal_marker(marker, keys), keys, where="m") == marker
    with pytest.raises(IntegrityError, match="m: manifest is not readable"):
        open_manifest(seal_marker(marker, keys), keys, where="m")
    with pytest.raises(IntegrityError, match="m: push marker is not readable"):
        open_marker(seal_manifest(_manifest(keys), keys), keys, where="m")


def _reseal(body: dict[str, Any], keys: ManifestKeys) -> bytes:
    import hashlib
    import hmac

    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    mac = hmac.new(keys.mac_key, canonical.encode(), hashlib.sha256).hexdigest()
    return json.dumps({"manifest": body, "hmac_sha256": mac}).encode()
